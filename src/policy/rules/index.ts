// The routing rules, in order: the first that returns a verdict decides (docs/routing.md: Decision rules).
// A new rule is a new module here plus one line in this list.
import { defaultRoute } from './default.js';
import { excludedImage } from './excluded-image.js';
import { imageClass } from './image-class.js';
import { imageOverride } from './image-override.js';
import { imageUnknown } from './image-unknown.js';
import { pin } from './pin.js';
import type { Rule } from './rule.js';
import { weightage } from './weightage.js';

export const RULES: readonly Rule[] = [
  excludedImage,
  pin,
  imageOverride,
  imageClass,
  imageUnknown,
  weightage,
  defaultRoute,
];
