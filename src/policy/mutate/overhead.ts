// spec.overhead follows the runtime class it was computed for.
import { copyWith } from '../../kube/json.js';
import type { Spec, SpecStep } from './step.js';

/**
 * spec.overhead is the RuntimeClass admission plugin's, computed for the class the pod arrived with.
 * It stays right only while the class does; for another class it is removed, and the plugin's pass
 * after this webhook (the chain runs again when a webhook changed the pod) sets the new class's.
 */
export const overhead: SpecStep = (spec, { received }) => {
  if (spec.runtimeClassName === received.runtimeClassName) {
    if (spec.overhead === received.overhead) return spec;
    return received.overhead === undefined
      ? withoutKey(spec, 'overhead')
      : copyWith(spec, { overhead: received.overhead });
  }
  return spec.overhead === undefined ? spec : withoutKey(spec, 'overhead');
};

function withoutKey(spec: Spec, key: keyof Spec): Spec {
  const next = Object.assign({}, spec);
  delete next[key];
  return next;
}
