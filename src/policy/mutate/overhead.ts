// spec.overhead follows the runtime class it was computed for.
import { copyWith } from '../../kube/json.js';
import type { Spec, SpecStep } from './step.js';

/**
 * spec.overhead is the RuntimeClass admission plugin's, computed for the class the pod arrived with.
 * It stays right only while the class does. For another class, the overhead the cluster's
 * RuntimeClass defines, when the webhook has read it: the plugin's pass after this webhook then
 * changes nothing, so the API server does not call the webhook again (reinvocation). Unknown: it
 * is removed, and that pass sets the new class's.
 */
export const overhead: SpecStep = (spec, { received, overheads }) => {
  if (spec.runtimeClassName === received.runtimeClassName) return withOverhead(spec, received.overhead);
  const known = spec.runtimeClassName ? overheads.get(spec.runtimeClassName) : undefined;
  return withOverhead(spec, known ?? undefined);
};

function withOverhead(spec: Spec, value: Spec['overhead']): Spec {
  if (spec.overhead === value) return spec;
  return value === undefined ? withoutKey(spec, 'overhead') : copyWith(spec, { overhead: value });
}

function withoutKey(spec: Spec, key: keyof Spec): Spec {
  const next = Object.assign({}, spec);
  delete next[key];
  return next;
}
