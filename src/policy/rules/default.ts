// Rule 5: nothing else applied.
import type { Rule } from './rule.js';

export const defaultRoute: Rule = ({ policy }) => ({
  route: policy.config.defaultRoute,
  rule: 'default',
  detail: 'no rule sends this build elsewhere',
});
