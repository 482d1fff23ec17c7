// The parts of a Pod the webhook reads or writes, checked before any rule runs. Checking only:
// the raw object is what gets mutated and diffed, so unknown fields can never be dropped.
import type { V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';

export type Pod = V1Pod;
export const CONTAINER_KINDS = ['containers', 'initContainers', 'ephemeralContainers'] as const;

const stringMap = z.record(z.string(), z.string());
const container = z.looseObject({ name: z.string().min(1), image: z.string().min(1) });
const expression = z.looseObject({ key: z.string(), operator: z.string(), values: z.array(z.string()).optional() });
const term = z.looseObject({ matchExpressions: z.array(expression).optional() });

const buildPod = z.looseObject({
  metadata: z.looseObject({ labels: stringMap.optional(), annotations: stringMap.optional() }).optional(),
  spec: z.looseObject(
    {
      containers: z.array(container).min(1, 'a pod needs at least one container'),
      initContainers: z.array(container).optional(),
      ephemeralContainers: z.array(container).optional(),
      nodeSelector: stringMap.optional(),
      tolerations: z.array(z.looseObject({ key: z.string().optional(), operator: z.string().optional(), value: z.string().optional(), effect: z.string().optional() })).optional(),
      affinity: z
        .looseObject({
          nodeAffinity: z
            .looseObject({
              requiredDuringSchedulingIgnoredDuringExecution: z.looseObject({ nodeSelectorTerms: z.array(term) }).optional(),
              preferredDuringSchedulingIgnoredDuringExecution: z.array(z.looseObject({ weight: z.number(), preference: term })).optional(),
            })
            .optional(),
        })
        .optional(),
    },
    { error: (issue) => (issue.input === undefined ? 'the pod has no spec' : undefined) },
  ),
});

/** Why this object cannot be routed as a build pod, or undefined when it can. */
export function buildPodProblem(object: unknown): string | undefined {
  const result = buildPod.safeParse(object);
  if (result.success) return undefined;
  const issue = result.error.issues[0]!;
  const path = issue.path.length > 0 ? issue.path.join('.') : 'object';
  return `${path}: ${issue.message}`;
}

/** Every image of the pod, in the order containers, initContainers, ephemeralContainers. */
export function podImages(pod: Pod): string[] {
  const images: string[] = [];
  const spec = pod.spec as Record<(typeof CONTAINER_KINDS)[number], { image?: string }[] | undefined>;
  for (const kind of CONTAINER_KINDS) for (const c of spec[kind] ?? []) if (c.image) images.push(c.image);
  return images;
}

/** The object's labels when they are a map, else none: a malformed object is simply not a build. */
export function labelsOf(object: unknown): Readonly<Record<string, unknown>> {
  const labels = (object as { metadata?: { labels?: unknown } } | null)?.metadata?.labels;
  return labels !== null && typeof labels === 'object' && !Array.isArray(labels) ? (labels as Record<string, unknown>) : {};
}
