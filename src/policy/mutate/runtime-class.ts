// The route's runtimeClassName; on a route without one, other routes' classes are taken away.
import type { SpecStep } from './step.js';
import { copyWith } from '../../kube/json.js';

/** The route's runtimeClassName (a null one: the cluster default, only other routes' classes go). */
export const runtimeClass: SpecStep = (spec, { route, others, decision, warn }) => {
  const current = spec.runtimeClassName;
  if (route.runtimeClassName !== null) {
    if (current === route.runtimeClassName) return spec;
    if (current !== undefined) warn(`runtimeClassName "${current}" replaced by "${route.runtimeClassName}"`);
    return copyWith(spec, { runtimeClassName: route.runtimeClassName });
  }
  // A null route runtime means the cluster default; only other routes' runtimes are taken away.
  if (current === undefined || !others.some((o) => o.runtimeClassName === current)) return spec;
  warn(`runtimeClassName "${current}" removed: ${decision.detail}`);
  const { runtimeClassName: _removed, ...rest } = spec;
  return rest;
};
