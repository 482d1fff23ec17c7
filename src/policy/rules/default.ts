// Rule 5: nothing else applied.
import { withUnknownImageNote } from './image-unknown.js';
import type { Rule } from './rule.js';

export const defaultRoute: Rule = (context) => ({
  route: context.policy.config.defaultRoute,
  rule: 'default',
  detail: withUnknownImageNote('no rule sends this build elsewhere', context),
});
