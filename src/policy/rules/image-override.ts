// Rule 2b: an operator's ImageVerdict override names the route for an image, whatever its content
// or config said. An override naming a route this config does not have is ignored.
import type { Rule } from './rule.js';

export const imageOverride: Rule = ({ images, facts, policy }) => {
  for (const image of images) {
    const verdict = facts.get(image);
    const override = verdict?.override;
    if (!verdict || !override || !policy.routes.some((r) => r.name === override.route)) continue;
    const reason = override.reason ? ` (${override.reason})` : '';
    return {
      route: override.route,
      rule: 'image-override',
      image,
      detail: `image ${image}: ImageVerdict override to ${override.route}${reason}; otherwise ${verdict.detail}`,
    };
  }
  return undefined;
};
