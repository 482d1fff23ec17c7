// The mutation (docs/routing.md). Copy-on-write: the result shares every untouched subtree with the
// submitted pod, so the diff (which skips identical references) only walks what changed.
import type {
  V1Affinity,
  V1Container,
  V1NodeSelectorRequirement,
  V1NodeSelectorTerm,
  V1Toleration,
  V1Volume,
} from '@kubernetes/client-node';
import type { Decision } from '../decide.js';
import { copyWith, sameJson } from '../../kube/json.js';
import { CONTAINER_KINDS, type ContainerKind, type Pod } from '../../kube/pod.js';
import { toleratesTaint } from '../invariants.js';
import { withoutUnconfinedAppArmor, withPodSecurity } from './pod-security.js';
import { KATA_PREFIX, otherRoutes, type CompiledRoute, type Policy } from '../policy.js';
import {
  type Memory,
  parseMemory,
  podIdentity,
  rememberAnnotations,
  rememberSubmitted,
  restoreAnnotations,
  restoreSubmitted,
  sealMemory,
} from './memory.js';
import type { MemorySeal } from '../seal.js';

export interface Mutation {
  pod: Pod;
  /** Changes the submitter would not expect, one short sentence each. */
  warnings: string[];
}

type Json = Record<string, unknown>;

/** What every step of the mutation needs: the chosen route, the others, the owned keys, the warnings. */
interface MutationContext {
  route: CompiledRoute;
  others: readonly CompiledRoute[];
  owned: ReadonlySet<string>;
  decision: Decision;
  warnings: string[];
}

/** Who the pod is (its namespace: absent from the object at CREATE) and the key its memory is sealed with. */
export interface MemoryContext {
  namespace: string;
  seal: MemorySeal;
}

export function mutate(
  pod: Pod,
  decision: Decision,
  policy: Policy,
  memoryContext: MemoryContext = { namespace: pod.metadata?.namespace ?? '', seal: policy.memorySeal },
): Mutation {
  const route = policy.route(decision.route);
  const ctx: MutationContext = {
    route,
    others: otherRoutes(policy, route),
    owned: policy.ownedKeys,
    decision,
    warnings: [],
  };
  // Route what was submitted, not what an earlier pass of this webhook made of it (reinvocation).
  const identity = podIdentity(pod, memoryContext.namespace);
  const stored = parseMemory(
    pod.metadata?.annotations?.[policy.annotations.submitted],
    identity,
    memoryContext.seal,
  );
  if (stored.forged)
    ctx.warnings.push(
      `annotation ${policy.annotations.submitted} ignored: it is not one this webhook wrote for this pod`,
    );
  const memorised = stored.memory;
  const { spec, memory } = routedSpec(pod, memorised, ctx, policy);
  const routedBefore = pod.metadata?.annotations?.[policy.annotations.route];
  if (routedBefore !== undefined && routedBefore !== decision.route) {
    ctx.warnings.unshift(
      `re-routed from ${routedBefore} to ${decision.route} after another admission change (${decision.detail}); the warnings below describe the final pod`,
    );
  }
  const annotations = routedAnnotations(pod.metadata?.annotations, memorised, memory, ctx, policy, {
    identity,
    seal: memoryContext.seal,
  });
  // The route as a label too, so that `kubectl get pods -L` and label selectors show it.
  const labels = pod.metadata?.labels;
  const routeLabel =
    labels?.[policy.annotations.route] === decision.route
      ? labels
      : { ...labels, [policy.annotations.route]: decision.route };
  const metadata =
    annotations === pod.metadata?.annotations && routeLabel === labels
      ? pod.metadata
      : copyWith(pod.metadata, { annotations, labels: routeLabel });
  return {
    pod: metadata === pod.metadata && spec === pod.spec ? pod : copyWith(pod, { metadata, spec }),
    warnings: ctx.warnings,
  };
}

/** The spec as the route wants it, from the submitted one, and what was replaced on the way. */
function routedSpec(pod: Pod, memorised: Memory, ctx: MutationContext, policy: Policy) {
  const submitted = restoreSubmitted(pod.spec!, memorised);
  let spec = submitted;
  if (policy.config.mode === 'enforce') {
    spec = withRuntimeClass(spec, ctx);
    spec = withPlacement(spec, ctx);
    spec = withPrivilegeLimits(spec, ctx.route, ctx.warnings);
    spec = withPodSecurity(spec, ctx.warnings);
    spec = withAutomount(spec, policy.config.automountServiceAccountToken, ctx.warnings);
    spec = withOverheadFor(spec, pod.spec!);
  }
  const memory = rememberSubmitted(submitted, spec);
  // A reinvocation that changes nothing keeps the very same spec, so the diff is empty at once.
  if (submitted !== pod.spec && spec !== pod.spec && sameJson(spec, pod.spec)) spec = pod.spec!;
  return { spec, memory };
}

/** The decision's annotations, the route's own, and the memory of what was replaced. */
function routedAnnotations(
  previous: Record<string, string> | undefined,
  memorised: Memory,
  memory: Memory,
  { route, decision, warnings }: MutationContext,
  policy: Policy,
  sealing: { identity: string; seal: MemorySeal },
): Record<string, string> | undefined {
  const keys = policy.annotations;
  const enforce = policy.config.mode === 'enforce';
  const submitted = restoreAnnotations(previous, memorised);
  const routed = enforce
    ? withoutUnconfinedAppArmor(withRouteAnnotations(submitted, route, policy, warnings), warnings)
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
    // Canonical (keys sorted): the API server re-serialises what it stores in its own key order.
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
  warnings: string[],
): Record<string, string> | undefined {
  const submittedKata = Object.keys(annotations ?? {}).filter((k) => k.startsWith(KATA_PREFIX));
  const routes = Object.entries(route.annotations);
  if (submittedKata.length === 0 && routes.length === 0) return annotations;
  const next = Object.assign({}, annotations);
  for (const key of submittedKata) {
    // What a route wrote on an earlier pass is not the submitter's: no warning for it.
    if (!policy.routes.some((r) => r.kataAnnotations[key] === next[key]))
      warnings.push(`annotation ${key} removed: only the route sets Kata's annotations`);
    delete next[key];
  }
  for (const [key, value] of routes) next[key] = value;
  return next;
}

type Spec = NonNullable<Pod['spec']>;

/**
 * A `pods/ephemeralcontainers` update of a pod routed to `route`: only the ephemeral containers can
 * change, and they get the route's privileged and capability limits.
 */
export function mutateEphemeral(pod: Pod, route: CompiledRoute, policy: Policy): Mutation {
  const warnings: string[] = [];
  if (policy.config.mode !== 'enforce') return { pod, warnings };
  const limited = withPrivilegeLimits(pod.spec!, route, warnings, ['ephemeralContainers']);
  const spec = withPodSecurity(limited, warnings, ['ephemeralContainers']);
  return { pod: spec === pod.spec ? pod : copyWith(pod, { spec }), warnings };
}

function withRuntimeClass(spec: Spec, { route, others, decision, warnings }: MutationContext): Spec {
  const current = spec.runtimeClassName;
  if (route.runtimeClassName !== null) {
    if (current === route.runtimeClassName) return spec;
    if (current !== undefined)
      warnings.push(`runtimeClassName "${current}" replaced by "${route.runtimeClassName}"`);
    return copyWith(spec, { runtimeClassName: route.runtimeClassName });
  }
  // A null route runtime means the cluster default; only other routes' runtimes are taken away.
  if (current === undefined || !others.some((o) => o.runtimeClassName === current)) return spec;
  warnings.push(`runtimeClassName "${current}" removed: ${decision.detail}`);
  const { runtimeClassName: _removed, ...rest } = spec;
  return rest;
}

/**
 * spec.overhead is the RuntimeClass admission plugin's, computed for the class the pod arrived with.
 * It stays right only while the class does; for another class it is removed, and the plugin's pass
 * after this webhook (the chain runs again when a webhook changed the pod) sets the new class's.
 */
function withOverheadFor(spec: Spec, received: Spec): Spec {
  if (spec.runtimeClassName === received.runtimeClassName) {
    if (spec.overhead === received.overhead) return spec;
    return received.overhead === undefined
      ? withoutKey(spec, 'overhead')
      : copyWith(spec, { overhead: received.overhead });
  }
  return spec.overhead === undefined ? spec : withoutKey(spec, 'overhead');
}

function withoutKey(spec: Spec, key: keyof Spec): Spec {
  const next = Object.assign({}, spec);
  delete next[key];
  return next;
}

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
  { route, others, owned }: MutationContext,
): boolean {
  if (!owned.has(key)) return true;
  const mine = route.nodeSelector[key];
  if (mine !== undefined) return accepts(mine);
  return !others.some((o) => o.nodeSelector[key] !== undefined && accepts(o.nodeSelector[key]));
}

function withPlacement(spec: Spec, ctx: MutationContext): Spec {
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
}

/** spec.nodeSelector: conflicting owned keys dropped, then the route's pairs written; none left is no selector. */
function withNodeSelector(
  selector: Record<string, string> | undefined,
  ctx: MutationContext,
): Record<string, string> | undefined {
  const { route, warnings } = ctx;
  let next = selector;
  for (const [key, value] of Object.entries(selector ?? {})) {
    if (keepsRequirement(key, (v) => v === value, ctx)) continue;
    next = Object.assign({}, next);
    delete next[key];
    if (route.nodeSelector[key] === undefined)
      warnings.push(`nodeSelector ${key}=${value} removed: this build is routed to the ${route.name} pool`);
    else warnings.push(`nodeSelector ${key}=${value} replaced by ${key}=${route.nodeSelector[key]}`);
  }
  for (const [key, value] of Object.entries(route.nodeSelector)) {
    if (next?.[key] !== value) next = copyWith(next, { [key]: value });
  }
  return next !== selector && next && Object.keys(next).length === 0 ? undefined : next;
}

function withNodeAffinity(affinity: V1Affinity | undefined, ctx: MutationContext): V1Affinity | undefined {
  const { route, warnings } = ctx;
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
          warnings.push(
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
  ctx: MutationContext,
): V1Toleration[] | undefined {
  const { route, warnings } = ctx;
  let next = tolerations;
  const kept = (tolerations ?? []).filter((t) => {
    const fits = !t.key || keepsRequirement(t.key, (v) => toleratesTaint(t, t.key!, v), ctx);
    if (fits && !route.foreignPools.some(([key, value]) => toleratesTaint(t, key, value))) return true;
    warnings.push(
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

/**
 * Containers outside the route's privileged list lose privileged: true and any added capability
 * beyond the route's allowed ones (PSS baseline by default), each with a warning.
 */
function withPrivilegeLimits(
  spec: Spec,
  route: CompiledRoute,
  warnings: string[],
  kinds: readonly ContainerKind[] = CONTAINER_KINDS,
): Spec {
  if (route.anyPrivileged) return spec;
  let next = spec;
  for (const kind of kinds) {
    const containers = spec[kind] as V1Container[] | undefined;
    if (!containers) continue;
    let copy: V1Container[] | undefined;
    containers.forEach((c, i) => {
      if (route.privileged[kind].has(c.name)) return;
      const limited = limitedContainer(
        c,
        route,
        kind,
        `${kind === 'containers' ? 'container' : kind.slice(0, -1)} "${c.name}"`,
        warnings,
      );
      if (limited === c) return;
      copy ??= [...containers];
      copy[i] = limited;
    });
    if (copy) next = copyWith(next, { [kind]: copy });
  }
  return next;
}

function limitedContainer(
  c: V1Container,
  route: CompiledRoute,
  kind: ContainerKind,
  what: string,
  warnings: string[],
): V1Container {
  const context = c.securityContext;
  if (!context) return c;
  let next = context;
  const allowedNames = () =>
    [...route.privileged[kind]].join(', ') ||
    (route.isSandboxed
      ? 'no container'
      : 'no container: it has no sandbox, so privileged is root on the node');
  if (context.privileged === true) {
    next = copyWith(next, { privileged: false });
    warnings.push(
      `${what}: privileged turned off (the ${route.name} route allows it only for ${allowedNames()})`,
    );
  }
  const added = context.capabilities?.add;
  const kept = added?.filter((cap) => route.capabilities.has(cap.replace(/^CAP_/, '')));
  if (added && kept!.length !== added.length) {
    next = copyWith(next, { capabilities: copyWith(context.capabilities, { add: kept }) });
    warnings.push(
      `${what}: capabilities ${added.filter((cap) => !kept!.includes(cap)).join(', ')} removed (the ${route.name} route allows them only for ${allowedNames()})`,
    );
  }
  return next === context ? c : copyWith(c, { securityContext: next });
}

/** The ServiceAccount admission plugin's token volume, which it injects before webhooks run. */
function isInjectedTokenVolume(volume: V1Volume): boolean {
  return (
    volume.name.startsWith('kube-api-access-') &&
    !!volume.projected?.sources?.some((s) => s.serviceAccountToken)
  );
}

function withAutomount(spec: Spec, automount: boolean, warnings: string[]): Spec {
  let next = spec;
  if (spec.automountServiceAccountToken !== automount) {
    if (spec.automountServiceAccountToken === true)
      warnings.push('automountServiceAccountToken: true turned off for build pods');
    next = copyWith(next, { automountServiceAccountToken: automount });
  }
  // The flag alone is too late: mutating webhooks run after the ServiceAccount plugin mounted the
  // token, so its volume and mounts are taken out as well.
  const injected = automount ? [] : (spec.volumes ?? []).filter(isInjectedTokenVolume).map((v) => v.name);
  if (injected.length === 0) return next;
  warnings.push(
    `service account token volume ${injected.join(', ')} removed (automountServiceAccountToken: false)`,
  );
  next = copyWith(next, { volumes: spec.volumes!.filter((v) => !injected.includes(v.name)) });
  for (const kind of CONTAINER_KINDS) {
    const containers = spec[kind] as V1Container[] | undefined;
    if (!containers?.some((c) => c.volumeMounts?.some((m) => injected.includes(m.name)))) continue;
    next = copyWith(next, {
      [kind]: containers.map((c) =>
        c.volumeMounts?.some((m) => injected.includes(m.name))
          ? copyWith(c, { volumeMounts: c.volumeMounts.filter((m) => !injected.includes(m.name)) })
          : c,
      ),
    });
  }
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
