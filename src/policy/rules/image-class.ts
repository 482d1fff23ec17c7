// Rule 3: an image inspection found Kata cannot run as it is goes to its class's route: a remedy
// route (an IA32 kernel, vsyscall=emulate) where the config names one, else the fallback route.
import type { Rule } from './rule.js';

const CLASSES = {
  '32-bit': { rule: 'image-arch', says: 'is 32-bit' },
  'legacy-glibc': { rule: 'image-class', says: 'needs a legacy glibc' },
} as const;

export const imageClass: Rule = ({ images, facts, policy }) => {
  for (const image of images) {
    const verdict = facts.get(image);
    if (!verdict || !(verdict.class in CLASSES)) continue;
    const cls = verdict.class as keyof typeof CLASSES;
    const route = policy.config.imageInspection.classRoutes[cls] ?? policy.config.fallbackRoute;
    return {
      route,
      rule: CLASSES[cls].rule,
      image,
      detail: `image ${image} ${CLASSES[cls].says} (${verdict.detail}); class ${cls} goes to ${route}`,
    };
  }
  return undefined;
};
