// The schema's building blocks: strict objects with "did you mean" hints, checked strings, label
// maps and selectors, tolerations, regexes; every error quotes the value and names its path.
import { z } from 'zod';
import { isLabelKey, isLabelValue } from '../kube/labels.js';
import { nearestKey } from './suggest.js';

/** A strict object whose unknown keys are reported with a "did you mean" hint. */
export function strict<Shape extends z.ZodRawShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      return issue.keys
        .map((key) => {
          const hint = nearestKey(key, known);
          return `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`;
        })
        .join('; ');
    },
  });
}

/** A string checked by `test`; the message quotes the value, so the user sees what was wrong. */
export function valid(test: (value: string) => boolean, what: string) {
  return z.string().superRefine((value, ctx) => {
    if (!test(value)) ctx.addIssue({ code: 'custom', message: `"${value}" is not a valid ${what}` });
  });
}

export const labelKey = valid(isLabelKey, 'label key');

/** A map of label keys to label values, each checked so the error names the key. */
export const labelMap = z.record(z.string(), z.string()).superRefine((map, ctx) => {
  for (const [key, value] of Object.entries(map)) {
    if (!isLabelKey(key))
      ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is not a valid label key` });
    else if (!isLabelValue(value))
      ctx.addIssue({ code: 'custom', path: [key], message: `"${value}" is not a valid label value` });
  }
});

export const annotationMap = z.record(z.string(), z.string()).superRefine((map, ctx) => {
  for (const key of Object.keys(map)) {
    if (!isLabelKey(key))
      ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is not a valid annotation key` });
  }
});

export const labelSelector = strict({
  matchLabels: labelMap.optional(),
  matchExpressions: z
    .array(
      strict({
        key: labelKey,
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(valid(isLabelValue, 'label value')).optional(),
      }).superRefine((req, ctx) => {
        const needsValues = req.operator === 'In' || req.operator === 'NotIn';
        const count = req.values?.length ?? 0;
        if (needsValues && count === 0)
          ctx.addIssue({
            code: 'custom',
            path: ['values'],
            message: `operator ${req.operator} needs at least one value`,
          });
        if (!needsValues && count > 0)
          ctx.addIssue({
            code: 'custom',
            path: ['values'],
            message: `operator ${req.operator} takes no values`,
          });
      }),
    )
    .optional(),
});

export const toleration = strict({
  key: labelKey.optional(),
  operator: z.enum(['Equal', 'Exists']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.int().optional(),
});

export const regex = z.string().superRefine((pattern, ctx) => {
  try {
    new RegExp(pattern, 'i');
  } catch (error) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid regular expression "${pattern}": ${(error as Error).message}`,
    });
  }
});
