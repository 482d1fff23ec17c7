// The pod's annotations: the decision's, the route's own (Kata's exactly), and the sealed memory.
import { KATA_PREFIX, type CompiledRoute, type Policy } from '../policy.js';
import type { MemorySeal } from '../seal.js';
import { type Memory, rememberAnnotations, restoreAnnotations, sealMemory } from './memory.js';
import { withoutUnconfinedAppArmor } from './pod-security.js';
import type { StepContext, Warn } from './step.js';

/** The decision's annotations, the route's own, and the memory of what was replaced. */
export function routedAnnotations(
  previous: Record<string, string> | undefined,
  memorised: Memory,
  memory: Memory,
  { route, decision, warn, policy }: StepContext,
  sealing: { identity: string; seal: MemorySeal },
): Record<string, string> | undefined {
  const keys = policy.annotations;
  const enforce = policy.config.mode === 'enforce';
  const submitted = restoreAnnotations(previous, memorised);
  const routed = enforce
    ? withoutUnconfinedAppArmor(withRouteAnnotations(submitted, route, policy, warn), warn)
    : submitted;
  Object.assign(memory, rememberAnnotations(submitted, routed, policy.routeAnnotationKeys));
  const remembers = Object.keys(memory).length > 0;
  const wanted: Record<string, string> = {
    ...pick(routed, policy.routeAnnotationKeys),
    ...(enforce && route.kataAnnotations),
    [keys.route]: decision.route,
    [keys.reason]: decision.rule,
    [keys.detail]: decision.detail,
    [keys.bucket]: String(decision.bucket),
    [keys.config]: policy.hash,
    ...(!enforce && { [keys.mode]: 'shadow' }),
    ...(remembers && { [keys.submitted]: sealMemory(memory, sealing.identity, sealing.seal) }),
  };
  const unwanted = [
    ...policy.routeAnnotationKeys.filter((k) => routed?.[k] === undefined),
    ...Object.keys(previous ?? {}).filter((k) => routed?.[k] === undefined),
    ...(remembers ? [] : [keys.submitted]),
  ];
  return withAnnotations(previous, wanted, unwanted);
}

function pick(
  annotations: Record<string, string> | undefined,
  keys: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of keys) if (annotations?.[key] !== undefined) out[key] = annotations[key];
  return out;
}

/**
 * The route's annotations over the pod's. Kata's (io.katacontainers.*) are the route's alone: every
 * submitted one is removed, with a warning, and the route's are written exactly (none merged).
 */
function withRouteAnnotations(
  annotations: Record<string, string> | undefined,
  route: CompiledRoute,
  policy: Policy,
  warn: Warn,
): Record<string, string> | undefined {
  const submittedKata = Object.keys(annotations ?? {}).filter((k) => k.startsWith(KATA_PREFIX));
  const routes = Object.entries(route.annotations);
  if (submittedKata.length === 0 && routes.length === 0) return annotations;
  const next = Object.assign({}, annotations);
  for (const key of submittedKata) {
    // What a route wrote on an earlier pass is not the submitter's: no warning for it.
    if (!policy.routes.some((r) => r.kataAnnotations[key] === next[key]))
      warn(`annotation ${key} removed: only the route sets Kata's annotations`);
    delete next[key];
  }
  for (const [key, value] of routes) next[key] = value;
  return next;
}

function withAnnotations(
  current: Record<string, string> | undefined,
  wanted: Record<string, string>,
  unwanted: string[],
): Record<string, string> | undefined {
  const stale = unwanted.filter((key) => current?.[key] !== undefined);
  if (stale.length === 0 && Object.keys(wanted).every((key) => current?.[key] === wanted[key]))
    return current;
  const next = Object.assign({}, current, wanted);
  for (const key of stale) delete next[key];
  return next;
}
