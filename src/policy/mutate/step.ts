// One step of the mutation: the spec in, the spec out (copy-on-write), warnings through ctx.warn.
import type { Decision, ImageFacts } from '../decide.js';
import type { ContainerKind, Pod } from '../../kube/pod.js';
import type { CompiledRoute, Policy } from '../policy.js';

export type Spec = NonNullable<Pod['spec']>;
export type Warn = (message: string) => void;

/**
 * What the cluster's RuntimeClasses say a pod of each class carries as `spec.overhead` (null:
 * none), for the classes last read; a class not in it is unknown.
 */
export type RuntimeClassOverheads = ReadonlyMap<string, Record<string, string> | null>;
export const NO_OVERHEADS: RuntimeClassOverheads = new Map();

export interface StepContext {
  route: CompiledRoute;
  /** Every other configured route: what the pod must no longer ask for. */
  others: readonly CompiledRoute[];
  /** Node label keys that belong to the webhook (every route's nodeSelector keys). */
  owned: ReadonlySet<string>;
  decision: Decision;
  policy: Policy;
  /** The spec as the API server sent it. */
  received: Spec;
  /** The container kinds a step may change: all of them, or the ephemeral ones on their update. */
  kinds: readonly ContainerKind[];
  /** What image inspection learned, by image reference as written (none without inspection). */
  facts: ImageFacts;
  overheads: RuntimeClassOverheads;
  /** A change the submitter would not expect, in one short sentence. */
  warn: Warn;
}

export type SpecStep = (spec: Spec, ctx: StepContext) => Spec;
