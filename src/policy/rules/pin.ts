// Rule 2: the first pin whose selector matches the pod's labels names the route.
import type { Rule } from './rule.js';

export const pin: Rule = ({ labels, policy }) => {
  const found = policy.pins.find((p) => p.matches(labels));
  if (!found) return undefined;
  const why = found.reason ? `: ${found.reason}` : '';
  return {
    route: found.route,
    rule: 'pin',
    detail: `pinned to ${found.route} by pins[${found.index}]${why}`,
  };
};
