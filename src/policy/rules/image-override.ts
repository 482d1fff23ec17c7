// Rule 2b: an operator's ImageVerdict override names the route for an image, whatever its content
// or config said. An override naming a route this config does not have is ignored.
import type { Rule } from './rule.js';

export const imageOverride: Rule = ({ images, facts, policy }) => {
  for (const image of images) {
    const verdict = facts.get(image);
    if (!verdict?.route || !policy.routes.some((r) => r.name === verdict.route)) continue;
    return {
      route: verdict.route,
      rule: 'image-override',
      image,
      detail: `image ${image}: ${verdict.detail}`,
    };
  }
  return undefined;
};
