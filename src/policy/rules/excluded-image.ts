// Rule 1: an image that matches an exclusion goes to that exclusion's route (the fallback route
// for a plain pattern, as Screwdriver's executor-router has it). Every container kind counts.
import type { Rule } from './rule.js';

export const excludedImage: Rule = ({ images, policy }) => {
  for (const image of images) {
    for (const { entry, pattern, route } of policy.exclusions) {
      if (pattern.test(image))
        return {
          route,
          rule: 'excluded-image',
          image,
          entry,
          detail: `image ${image} matches exclusion "${entry}"`,
        };
    }
  }
  return undefined;
};
