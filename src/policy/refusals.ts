// What the webhook cannot correct without breaking the build, so it refuses the pod (SPEC section 3,
// the guard's invariants): host namespaces, a fixed node, and hostPath volumes outside the route's
// allow-list. Each refusal names the field and the rule; the guard checks the same after mutation.
import type { Pod } from './pod.js';
import type { CompiledRoute } from './policy.js';

const HOST_NAMESPACES = ['hostPID', 'hostIPC', 'hostNetwork'] as const;

/** A "." or ".." segment, as RE2 and JavaScript both read it: the guard's CEL uses the same text. */
export const DOT_SEGMENT = '(^|/)[.]{1,2}(/|$)';
const dotSegment = new RegExp(DOT_SEGMENT);

/** A path with no ".", ".." or empty segment: "starts with a folder" then means "inside it". */
export function isPlainPath(path: string): boolean {
  return !dotSegment.test(path) && !path.includes('//');
}

/** Is `path` inside one of `prefixes` (each an absolute folder ending in "/")? */
export function hostPathAllowed(path: string, prefixes: readonly string[]): boolean {
  if (!isPlainPath(path)) return false;
  return prefixes.some((prefix) => path.startsWith(prefix) || path === prefix.slice(0, -1));
}

/** Why this pod cannot run on `route`, one sentence per field; empty when it can. */
export function refusals(pod: Pod, route: CompiledRoute, operation: string): string[] {
  const spec = pod.spec!;
  const found: string[] = [];
  for (const field of HOST_NAMESPACES) {
    if (spec[field] === true) found.push(`spec.${field}: build pods may not share the node's namespaces`);
  }
  // The scheduler (with the route's pool) places build pods; nodeName would skip it. Only on CREATE:
  // a running pod's nodeName is the scheduler's own.
  if (operation === 'CREATE' && spec.nodeName) {
    found.push(
      `spec.nodeName: build pods are placed by their route's pool, not on a named node ("${spec.nodeName}")`,
    );
  }
  (spec.volumes ?? []).forEach((volume, i) => {
    const path = volume.hostPath?.path;
    if (path !== undefined && !hostPathAllowed(path, route.hostPathPrefixes)) {
      found.push(
        `spec.volumes[${i}].hostPath.path: "${path}" is outside the ${route.name} route's hostPathPrefixes (${route.hostPathPrefixes.join(', ') || 'none'})`,
      );
    }
  });
  return found;
}
