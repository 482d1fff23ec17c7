// The route's pool: owned node-selector keys, required affinity terms and tolerations that
// disagree with the route are dropped, then the route's selector, preference and tolerations added.
import type {
  V1Affinity,
  V1NodeSelectorRequirement,
  V1NodeSelectorTerm,
  V1Toleration,
} from '@kubernetes/client-node';
import { copyWith, sameJson } from '../../kube/json.js';
import { toleratesTaint } from '../invariants.js';
import type { Spec, SpecStep, StepContext } from './step.js';

type Json = Record<string, unknown>;

/** Does a node whose label `key` has `value` satisfy this requirement? (pkg/apis/core/v1/helper semantics) */
function admits(requirement: V1NodeSelectorRequirement, value: string): boolean {
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case 'In':
      return values.includes(value);
    case 'NotIn':
      return !values.includes(value);
    case 'Exists':
      return true;
    case 'DoesNotExist':
      return false;
    case 'Gt':
    case 'Lt': {
      const [node, bound] = [Number(value), Number(values[0])];
      if (!Number.isInteger(node) || !Number.isInteger(bound)) return false;
      return requirement.operator === 'Gt' ? node > bound : node < bound;
    }
    default:
      return false;
  }
}

/**
 * A requirement on an owned key survives only if it agrees with the chosen route: where the route
 * sets the key, it must admit the route's value; where only the other route does, it must not
 * admit the other route's value. Keys the webhook does not own are always kept.
 */
function keepsRequirement(
  key: string,
  accepts: (value: string) => boolean,
  { route, others, owned }: StepContext,
): boolean {
  if (!owned.has(key)) return true;
  const mine = route.nodeSelector[key];
  if (mine !== undefined) return accepts(mine);
  return !others.some((o) => o.nodeSelector[key] !== undefined && accepts(o.nodeSelector[key]));
}

export const placement: SpecStep = (spec, ctx) => {
  const nodeSelector = withNodeSelector(spec.nodeSelector, ctx);
  const affinity = withNodeAffinity(spec.affinity, ctx);
  const tolerations = withTolerations(spec.tolerations, ctx);
  if (nodeSelector === spec.nodeSelector && affinity === spec.affinity && tolerations === spec.tolerations)
    return spec;
  const next = Object.assign({}, spec) as unknown as Json;
  for (const [key, value] of [
    ['nodeSelector', nodeSelector],
    ['affinity', affinity],
    ['tolerations', tolerations],
  ] as const) {
    if (value === undefined) delete next[key];
    else next[key] = value;
  }
  return next as unknown as Spec;
};

/** spec.nodeSelector: conflicting owned keys dropped, then the route's pairs written; none left is no selector. */
function withNodeSelector(
  selector: Record<string, string> | undefined,
  ctx: StepContext,
): Record<string, string> | undefined {
  const { route, warn } = ctx;
  let next = selector;
  for (const [key, value] of Object.entries(selector ?? {})) {
    if (keepsRequirement(key, (v) => v === value, ctx)) continue;
    next = Object.assign({}, next);
    delete next[key];
    if (route.nodeSelector[key] === undefined)
      warn(`nodeSelector ${key}=${value} removed: this build is routed to the ${route.name} pool`);
    else warn(`nodeSelector ${key}=${value} replaced by ${key}=${route.nodeSelector[key]}`);
  }
  for (const [key, value] of Object.entries(route.nodeSelector)) {
    if (next?.[key] !== value) next = copyWith(next, { [key]: value });
  }
  return next !== selector && next && Object.keys(next).length === 0 ? undefined : next;
}

function withNodeAffinity(affinity: V1Affinity | undefined, ctx: StepContext): V1Affinity | undefined {
  const { route, warn } = ctx;
  const nodeAffinity = affinity?.nodeAffinity;
  let next: Json | undefined = nodeAffinity as Json | undefined;

  const required = nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (required) {
    let matchesAll = false;
    let termsChanged = false;
    const terms = required.nodeSelectorTerms.map((term: V1NodeSelectorTerm) => {
      const expressions = term.matchExpressions;
      if (!expressions) return term;
      const kept = expressions.filter((e) => keepsRequirement(e.key, (v) => admits(e, v), ctx));
      if (kept.length === expressions.length) return term;
      termsChanged = true;
      for (const e of expressions) {
        if (!kept.includes(e))
          warn(
            `required node affinity ${e.key} ${e.operator} ${(e.values ?? []).join(',')} removed: this build is routed to the ${route.name} pool`,
          );
      }
      if (kept.length === 0 && !term.matchFields?.length) matchesAll = true;
      return copyWith(term, { matchExpressions: kept });
    });
    if (matchesAll) {
      // An emptied term would match no node; what it meant after the removal is "any node", and
      // the terms are ORed, so the whole requirement is gone.
      next = Object.assign({}, next);
      delete next.requiredDuringSchedulingIgnoredDuringExecution;
    } else if (termsChanged) {
      next = copyWith(next, {
        requiredDuringSchedulingIgnoredDuringExecution: copyWith(required, { nodeSelectorTerms: terms }),
      });
    }
  }

  const term = route.preferredTerm;
  const preferred = nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
  if (term && !preferred?.some((p) => sameJson(p, term))) {
    next = copyWith(next, { preferredDuringSchedulingIgnoredDuringExecution: [...(preferred ?? []), term] });
  }

  if (next === nodeAffinity) return affinity;
  if (next && Object.keys(next).length > 0) return copyWith(affinity, { nodeAffinity: next });
  const { nodeAffinity: _removed, ...rest } = affinity ?? {};
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/**
 * Tolerations on owned keys that fit the route, none that admits another route's pool (the
 * guard's rule, keyless Exists included), then the route's own.
 */
function withTolerations(
  tolerations: V1Toleration[] | undefined,
  ctx: StepContext,
): V1Toleration[] | undefined {
  const { route, warn } = ctx;
  let next = tolerations;
  const kept = (tolerations ?? []).filter((t) => {
    const fits = !t.key || keepsRequirement(t.key, (v) => toleratesTaint(t, t.key!, v), ctx);
    if (fits && !route.foreignPools.some(([key, value]) => toleratesTaint(t, key, value))) return true;
    warn(
      `toleration ${t.key ?? '(any key)'}${t.operator === 'Exists' ? ' Exists' : `=${t.value ?? ''}`} removed: this build is routed to the ${route.name} pool`,
    );
    return false;
  });
  if (tolerations && kept.length !== tolerations.length) next = kept;
  for (const wanted of route.addedTolerations) {
    if (!next?.some((t) => sameToleration(t, wanted))) next = [...(next ?? []), wanted as V1Toleration];
  }
  return next;
}

function sameToleration(a: V1Toleration, b: V1Toleration): boolean {
  return (
    (a.key ?? '') === (b.key ?? '') &&
    (a.operator ?? 'Equal') === (b.operator ?? 'Equal') &&
    (a.value ?? '') === (b.value ?? '') &&
    (a.effect ?? '') === (b.effect ?? '') &&
    a.tolerationSeconds === b.tolerationSeconds
  );
}
