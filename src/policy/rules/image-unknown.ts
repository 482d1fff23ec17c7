// Rule 3b: an image inspection could not say in time goes to imageInspection.onUnknown, unless
// that is the default route, which means "treat as compatible" (the later rules decide).
import type { Rule, RuleContext } from './rule.js';

export const imageUnknown: Rule = ({ images, facts, policy }) => {
  const image = images.find((i) => facts.get(i)?.class === 'unknown');
  const onUnknown = policy.config.imageInspection.onUnknown;
  if (!image || onUnknown === policy.config.defaultRoute) return undefined;
  return {
    route: onUnknown,
    rule: 'image-unknown',
    image,
    detail: `${unknownNote(image, facts.get(image)!.detail)}; imageInspection.onUnknown is ${onUnknown}`,
  };
};

const unknownNote = (image: string, why: string) => `image ${image} could not be inspected (${why})`;

/** For the rules that treat an uninspectable image as compatible: the detail still names it. */
export function withUnknownImageNote(detail: string, { images, facts }: RuleContext): string {
  const unknown = images.find((image) => facts.get(image)?.class === 'unknown');
  return unknown
    ? `${detail}; ${unknownNote(unknown, facts.get(unknown)!.detail)}, treated as compatible`
    : detail;
}
