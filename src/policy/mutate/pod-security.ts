// Pod Security "baseline" corrections the webhook can make without breaking a build, each with a
// warning: seccomp and AppArmor Unconfined become RuntimeDefault (a privileged container runs
// unconfined whatever its profile says, so dind is unaffected), procMount goes back to Default,
// hostPorts are dropped. What it cannot correct (SELinux types, unsafe sysctls) the invariants refuse.
import type { V1Container, V1ContainerPort, V1SecurityContext } from '@kubernetes/client-node';
import { APPARMOR_ANNOTATION } from '../invariants.js';
import { copyWith } from '../../kube/json.js';
import type { SpecStep, Warn } from './step.js';

type Json = Record<string, unknown>;
type Profile = { type: string } | undefined;

const RUNTIME_DEFAULT = { type: 'RuntimeDefault' };

/** A security context (pod or container) without Unconfined profiles; procMount only for containers. */
function safeContext<T extends Json>(context: T | undefined, what: string, warn: Warn): T | undefined {
  if (!context) return context;
  let next = context;
  for (const field of ['seccompProfile', 'appArmorProfile'] as const) {
    if ((context[field] as Profile)?.type !== 'Unconfined') continue;
    next = copyWith(next, { [field]: RUNTIME_DEFAULT });
    warn(`${what}.${field}: Unconfined replaced by RuntimeDefault`);
  }
  if (context.procMount !== undefined && context.procMount !== 'Default') {
    next = copyWith(next, { procMount: 'Default' });
    warn(`${what}.procMount: ${String(context.procMount)} replaced by Default`);
  }
  return next;
}

function safeContainer(c: V1Container, what: string, warn: Warn): V1Container {
  const securityContext = safeContext(c.securityContext as Json | undefined, `${what}.securityContext`, warn);
  const ports = c.ports?.some((p) => p.hostPort) ? withoutHostPorts(c.ports, what, warn) : c.ports;
  if (securityContext === c.securityContext && ports === c.ports) return c;
  return copyWith(c, { securityContext: securityContext as V1SecurityContext, ports });
}

function withoutHostPorts(ports: V1ContainerPort[], what: string, warn: Warn): V1ContainerPort[] {
  return ports.map((p, i) => {
    if (!p.hostPort) return p;
    warn(`${what}.ports[${i}].hostPort ${p.hostPort} removed: build pods do not bind node ports`);
    const { hostPort: _removed, ...rest } = p;
    return rest as V1ContainerPort;
  });
}

/** The spec with the correctable baseline fields corrected, for the step's container kinds. */
export const podSecurity: SpecStep = (spec, { warn, kinds }) => {
  let next = spec;
  const podContext = safeContext(spec.securityContext as Json | undefined, 'spec.securityContext', warn);
  if (podContext !== spec.securityContext) next = copyWith(next, { securityContext: podContext });
  for (const kind of kinds) {
    const containers = spec[kind] as V1Container[] | undefined;
    if (!containers) continue;
    const safe = containers.map((c, i) => safeContainer(c, `spec.${kind}[${i}]`, warn));
    if (safe.some((c, i) => c !== containers[i])) next = copyWith(next, { [kind]: safe });
  }
  return next;
};

/** Annotations without AppArmor "unconfined" (the annotation form of the profile). */
export function withoutUnconfinedAppArmor(
  annotations: Record<string, string> | undefined,
  warn: Warn,
): Record<string, string> | undefined {
  const unconfined = Object.keys(annotations ?? {}).filter(
    (k) => k.startsWith(APPARMOR_ANNOTATION) && annotations![k] === 'unconfined',
  );
  if (unconfined.length === 0) return annotations;
  const next = Object.assign({}, annotations);
  for (const key of unconfined) {
    delete next[key];
    warn(`annotation ${key}: unconfined removed (the runtime's default profile applies)`);
  }
  return next;
}
