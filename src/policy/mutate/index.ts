// The mutation (docs/routing.md): a list of steps over the spec, then the annotations and the route
// label. Copy-on-write: the result shares every untouched subtree with the submitted pod, so the
// diff (which skips identical references) only walks what changed.
import { NO_IMAGE_FACTS, type Decision, type ImageFacts } from '../decide.js';
import { copyWith, sameJson } from '../../kube/json.js';
import { CONTAINER_KINDS, type Pod } from '../../kube/pod.js';
import type { CompiledRoute, Policy } from '../policy.js';
import type { MemorySeal } from '../seal.js';
import { routedAnnotations } from './annotations.js';
import { automount } from './automount.js';
import { memoryFloor } from './memory-floor.js';
import { type Memory, parseMemory, podIdentity, rememberSubmitted, restoreSubmitted } from './memory.js';
import { overhead } from './overhead.js';
import { pinDigests } from './pin-digests.js';
import { placement } from './placement.js';
import { podSecurity } from './pod-security.js';
import { privileges } from './privileges.js';
import { runtimeClass } from './runtime-class.js';
import { NO_OVERHEADS, type RuntimeClassOverheads, type SpecStep, type StepContext } from './step.js';
import { terminationMessage } from './termination-message.js';

/** In order: the overhead last, since it follows the runtime class. */
const STEPS: readonly SpecStep[] = [
  runtimeClass,
  placement,
  privileges,
  podSecurity,
  automount,
  memoryFloor,
  terminationMessage,
  pinDigests,
  overhead,
];
/** A `pods/ephemeralcontainers` update: only the ephemeral containers can change. */
const EPHEMERAL_STEPS: readonly SpecStep[] = [privileges, podSecurity];

export interface Mutation {
  pod: Pod;
  /** Changes the submitter would not expect, one short sentence each. */
  warnings: string[];
}

/**
 * Who the pod is (its namespace: absent from the object at CREATE), the key its memory is sealed
 * with, and the RuntimeClasses' overheads as the cluster last said.
 */
export interface MutationContext {
  namespace: string;
  seal: MemorySeal;
  overheads?: RuntimeClassOverheads;
}

function stepContext(
  pod: Pod,
  route: CompiledRoute,
  decision: Decision,
  policy: Policy,
  warnings: string[],
  facts: ImageFacts = NO_IMAGE_FACTS,
  overheads: RuntimeClassOverheads = NO_OVERHEADS,
): StepContext {
  return {
    route,
    others: route.others,
    owned: policy.ownedKeys,
    decision,
    policy,
    received: pod.spec!,
    kinds: CONTAINER_KINDS,
    facts,
    overheads,
    warn: (message) => void warnings.push(message),
  };
}

const applied = (steps: readonly SpecStep[], spec: StepContext['received'], ctx: StepContext) =>
  steps.reduce((next, step) => step(next, ctx), spec);

export function mutate(
  pod: Pod,
  decision: Decision,
  policy: Policy,
  context: MutationContext = { namespace: pod.metadata?.namespace ?? '', seal: policy.memorySeal },
  facts: ImageFacts = NO_IMAGE_FACTS,
): Mutation {
  const warnings: string[] = [];
  const route = policy.route(decision.route);
  const ctx = stepContext(pod, route, decision, policy, warnings, facts, context.overheads);
  // Route what was submitted, not what an earlier pass of this webhook made of it (reinvocation).
  const identity = podIdentity(pod, context.namespace);
  const memorised = readMemory(pod, identity, context.seal, ctx);
  const { spec, memory } = routedSpec(pod, memorised, ctx);
  const routedBefore = pod.metadata?.annotations?.[policy.annotations.route];
  if (routedBefore !== undefined && routedBefore !== decision.route) {
    warnings.unshift(
      `re-routed from ${routedBefore} to ${decision.route} after another admission change (${decision.detail}); the warnings below describe the final pod`,
    );
  }
  const annotations = routedAnnotations(pod.metadata?.annotations, memorised, memory, ctx, {
    identity,
    seal: context.seal,
  });
  const labels = withRouteLabel(pod.metadata?.labels, policy.annotations.route, decision.route);
  const metadata =
    annotations === pod.metadata?.annotations && labels === pod.metadata?.labels
      ? pod.metadata
      : copyWith(pod.metadata, { annotations, labels });
  return {
    pod: metadata === pod.metadata && spec === pod.spec ? pod : copyWith(pod, { metadata, spec }),
    warnings,
  };
}

/** The memory of an earlier pass, when its seal verifies for this pod (else none, with a warning). */
function readMemory(pod: Pod, identity: string, seal: MemorySeal, ctx: StepContext): Memory {
  const key = ctx.policy.annotations.submitted;
  const stored = parseMemory(pod.metadata?.annotations?.[key], identity, seal);
  if (stored.forged) ctx.warn(`annotation ${key} ignored: it is not one this webhook wrote for this pod`);
  return stored.memory;
}

/** The route as a label too, so that `kubectl get pods -L` and label selectors show it. */
function withRouteLabel(labels: Record<string, string> | undefined, key: string, route: string) {
  return labels?.[key] === route ? labels : { ...labels, [key]: route };
}

/** The spec as the route wants it, from the submitted one, and what was replaced on the way. */
function routedSpec(pod: Pod, memorised: Memory, ctx: StepContext) {
  const submitted = restoreSubmitted(pod.spec!, memorised);
  let spec = ctx.policy.config.mode === 'enforce' ? applied(STEPS, submitted, ctx) : submitted;
  const memory = rememberSubmitted(submitted, spec);
  // A reinvocation that changes nothing keeps the very same spec, so the diff is empty at once.
  if (submitted !== pod.spec && spec !== pod.spec && sameJson(spec, pod.spec)) spec = pod.spec!;
  return { spec, memory };
}

/**
 * A `pods/ephemeralcontainers` update of a pod routed to `route`: only the ephemeral containers can
 * change, and they get the route's privileged and capability limits.
 */
export function mutateEphemeral(
  pod: Pod,
  route: CompiledRoute,
  policy: Policy,
  decision: Decision,
): Mutation {
  const warnings: string[] = [];
  if (policy.config.mode !== 'enforce') return { pod, warnings };
  const ctx = {
    ...stepContext(pod, route, decision, policy, warnings),
    kinds: ['ephemeralContainers'] as const,
  };
  const spec = applied(EPHEMERAL_STEPS, pod.spec!, ctx);
  return { pod: spec === pod.spec ? pod : copyWith(pod, { spec }), warnings };
}
