// Privileged and capabilities: only the route's named containers keep them.
import type { V1Container } from '@kubernetes/client-node';
import { copyWith } from '../../kube/json.js';
import type { ContainerKind } from '../../kube/pod.js';
import type { CompiledRoute } from '../policy.js';
import type { SpecStep, Warn } from './step.js';

/**
 * Containers outside the route's privileged list lose privileged: true and any added capability
 * beyond the route's allowed ones (PSS baseline by default), each with a warning.
 */
export const privileges: SpecStep = (spec, { route, kinds, warn }) => {
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
        warn,
      );
      if (limited === c) return;
      copy ??= [...containers];
      copy[i] = limited;
    });
    if (copy) next = copyWith(next, { [kind]: copy });
  }
  return next;
};

function limitedContainer(
  c: V1Container,
  route: CompiledRoute,
  kind: ContainerKind,
  what: string,
  warn: Warn,
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
    warn(`${what}: privileged turned off (the ${route.name} route allows it only for ${allowedNames()})`);
  }
  const added = context.capabilities?.add;
  const kept = added?.filter((cap) => route.capabilities.has(cap.replace(/^CAP_/, '')));
  if (added && kept!.length !== added.length) {
    next = copyWith(next, { capabilities: copyWith(context.capabilities, { add: kept }) });
    warn(
      `${what}: capabilities ${added.filter((cap) => !kept!.includes(cap)).join(', ')} removed (the ${route.name} route allows them only for ${allowedNames()})`,
    );
  }
  return next === context ? c : copyWith(c, { securityContext: next });
}
