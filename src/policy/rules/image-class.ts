// Rule 3: an image inspection found Kata cannot run as it is goes to its class's route: a remedy
// route (an IA32 kernel, vsyscall=emulate) where the config names one, else the fallback route.
import type { Policy } from '../policy.js';
import type { ImageVerdict, Rule } from './rule.js';

const CLASSES = {
  '32-bit': { rule: 'image-arch', says: 'is 32-bit' },
  'legacy-glibc': { rule: 'image-class', says: 'needs a legacy glibc' },
} as const;

export const imageClass: Rule = ({ images, facts, policy }) => {
  for (const image of images) {
    const verdict = facts.get(image);
    if (!verdict || !(verdict.class in CLASSES)) continue;
    const cls = verdict.class as keyof typeof CLASSES;
    const route = classRoute(policy, cls);
    if (verdict.learned && !learnedRoute(policy, cls, verdict.learned.route)) continue;
    return {
      route,
      rule: CLASSES[cls].rule,
      image,
      detail: `image ${image} ${CLASSES[cls].says} (${verdict.detail}); class ${cls} goes to ${route}`,
    };
  }
  return undefined;
};

/**
 * Where a class learned from a build that failed on route `from` sends the image: its class's
 * route, but only towards isolation (never from a sandbox to a route without one, unless the config
 * allows it). Undefined: no such route; it is reported and an operator decides with an override.
 */
export function learnedRoute(policy: Policy, cls: keyof typeof CLASSES, from: string): string | undefined {
  const to = classRoute(policy, cls);
  if (policy.config.imageInspection.content.learning.allowLessIsolated) return to;
  const sandboxed = (name: string) => policy.routes.find((r) => r.name === name)?.isSandboxed ?? false;
  return sandboxed(from) && !sandboxed(to) ? undefined : to;
}

/** The route a class leads to by itself: a remedy or the fallback; onUnknown; else the default route (weightage applies). */
export function classRoute(policy: Policy, cls: ImageVerdict['class']): string {
  const { imageInspection, fallbackRoute, defaultRoute } = policy.config;
  if (cls === 'ok') return defaultRoute;
  if (cls === 'unknown') return imageInspection.onUnknown;
  return imageInspection.classRoutes[cls] ?? fallbackRoute;
}
