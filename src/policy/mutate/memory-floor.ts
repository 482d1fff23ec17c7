// A sandboxed build's VM lives in the pod's memory cgroup (Kata's sandbox_cgroup_only, kata-deploy's
// default), which holds the containers' limits plus the RuntimeClass overhead: a container limit
// of 64Mi leaves the VM too little to boot (kata-containers#7470). On a route with a memoryFloor,
// a build container without a memory limit, or with one below the floor, gets the floor (or its
// own memory request, when that is larger), with a warning.
import type { V1Container } from '@kubernetes/client-node';
import { copyWith } from '../../kube/json.js';
import { quantityValue } from '../../kube/quantity.js';
import type { SpecStep, Warn } from './step.js';

function withFloor(c: V1Container, floor: number, floorText: string, route: string, warn: Warn): V1Container {
  const limit = c.resources?.limits?.memory;
  const bytes = quantityValue(limit);
  if (bytes !== undefined && bytes >= floor) return c;
  const request = c.resources?.requests?.memory;
  const raised = (quantityValue(request) ?? 0) > floor ? request! : floorText;
  warn(
    limit === undefined
      ? `container "${c.name}": no memory limit; ${raised} set (the ${route} route's VM floor is ${floorText})`
      : `container "${c.name}": memory limit ${limit} raised to ${raised} (the ${route} route's VM floor is ${floorText})`,
  );
  const limits = { ...c.resources?.limits, memory: raised };
  return copyWith(c, { resources: copyWith(c.resources, { limits }) });
}

export const memoryFloor: SpecStep = (spec, { route, kinds, warn }) => {
  const floor = route.memoryFloorBytes;
  if (floor === undefined || !kinds.includes('containers')) return spec;
  const containers = spec.containers.map((c) => withFloor(c, floor, route.memoryFloor!, route.name, warn));
  return containers.some((c, i) => c !== spec.containers[i]) ? copyWith(spec, { containers }) : spec;
};
