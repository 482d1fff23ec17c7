// Rule 4: during a rollout, a job whose bucket is below weightage goes to the default route, the
// rest to the fallback route. The bucket is stable per job, so raising weightage only moves jobs in.
import { withUnknownImageNote } from './image-unknown.js';
import type { Rule } from './rule.js';

export const weightage: Rule = (context) => {
  const { policy, bucket, rolloutKey } = context;
  const { weightage: percent, defaultRoute, fallbackRoute } = policy.config;
  if (percent >= 100) return undefined;
  const inside = bucket < percent;
  return {
    route: inside ? defaultRoute : fallbackRoute,
    rule: 'weightage',
    detail: withUnknownImageNote(
      `bucket ${bucket} of key "${rolloutKey}" is ${inside ? 'below' : 'at or above'} weightage ${percent}`,
      context,
    ),
  };
};
