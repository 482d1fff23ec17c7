// What every build pod *is* once routed, one row per rule: the webhook checks a row in TypeScript on
// the pod it is about to return (a pod it cannot correct is refused, naming the field), and the
// guard checks the same row as CEL on the pod the API server is about to store. Both halves of a
// rule stand side by side here, and a test sends generated pods through a real API server to show
// that webhook and guard agree (docs/security.md).
import type { V1Container } from '@kubernetes/client-node';
import { CONTAINER_KINDS, type ContainerKind, type Pod } from '../kube/pod.js';
import { KATA_PREFIX, type CompiledRoute, type Policy } from './policy.js';
import { DOT_SEGMENT, hostPathAllowed } from '../kube/paths.js';

export interface Invariant {
  /**
   * When it is checked: `create` (placement: fixed once scheduled), `admission` (CREATE and
   * ephemeral containers), `always` (every UPDATE of the pod too: annotations stay mutable).
   */
  when: 'create' | 'admission' | 'always';
  /** Whether the webhook's mutation makes it hold; the others it can only refuse. */
  corrected: boolean;
  /** What is wrong with this pod on this route, each naming the exact field; empty when it holds. */
  check(pod: Pod, route: CompiledRoute, policy: Policy): string[];
  /** CEL, true when it holds, over `object`, `oldObject`, `request` and the guard's route variables. */
  cel(policy: Policy): string;
  message(policy: Policy): string;
}

/** A CEL string literal. */
export const celString = (s: string) => `'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
export const celList = (items: Iterable<string>) => `[${[...items].map(celString).join(', ')}]`;

/** Pod Security Standards "baseline": the sysctls a pod may set (namespaced, isolated from the node). */
const SAFE_SYSCTLS = [
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
  'net.ipv4.tcp_rmem',
  'net.ipv4.tcp_wmem',
] as const;
/** Pod Security Standards "baseline": the SELinux types a pod may ask for. */
const SAFE_SELINUX_TYPES = ['container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'];
export const APPARMOR_ANNOTATION = 'container.apparmor.security.beta.kubernetes.io/';
const HOST_NAMESPACES = ['hostPID', 'hostIPC', 'hostNetwork'] as const;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The field path messages use, e.g. spec.initContainers[0]; the common ones made once, not per check. */
const AT = Object.fromEntries(
  CONTAINER_KINDS.map((kind) => [kind, Array.from({ length: 32 }, (_, i) => `spec.${kind}[${i}]`)]),
) as Record<ContainerKind, string[]>;
const atOf = (kind: ContainerKind, i: number) => AT[kind][i] ?? `spec.${kind}[${i}]`;

/** Every container's problem, if it has one. */
function byContainer(
  pod: Pod,
  problem: (c: Json, at: string, kind: ContainerKind) => string | undefined,
): string[] {
  const found: string[] = [];
  for (const kind of CONTAINER_KINDS) {
    const list = (pod.spec?.[kind] ?? []) as V1Container[];
    for (let i = 0; i < list.length; i++) {
      const p = problem(list[i] as Json, atOf(kind, i), kind);
      if (p !== undefined) found.push(p);
    }
  }
  return found;
}

/** `check(c, list)` for every container of every kind; `list` is the guard's variable for that kind. */
function everyContainer(check: (list: string) => string): string {
  return CONTAINER_KINDS.map(
    (kind) =>
      `(!has(object.spec.${kind}) || object.spec.${kind}.all(c, ${check(`variables.${listVariable(kind)}`)}))`,
  ).join(' && ');
}
export const listVariable = (kind: ContainerKind) =>
  ({
    containers: 'privileged',
    initContainers: 'privilegedInit',
    ephemeralContainers: 'privilegedEphemeral',
  })[kind];

/** `check(route)` for the pod's route; routes whose check is `true` are left out. */
function perRoute(policy: Policy, check: (route: CompiledRoute) => string): string {
  const parts = policy.routes
    .map((route) => [route, check(route)] as const)
    .filter(([, expr]) => expr !== 'true')
    .map(([route, expr]) => `(variables.route != ${celString(route.name)} || (${expr}))`);
  return parts.length > 0 ? parts.join(' && ') : 'true';
}

/** A toleration `t` that admits nodes tainted key=value (any effect), keyless Exists included. */
function toleratesTaintCel(key: string, value: string): string {
  const exists = `(has(t.operator) && t.operator == 'Exists' && (!has(t.key) || t.key == '' || t.key == ${celString(key)}))`;
  const equal = `((!has(t.operator) || t.operator == 'Equal') && has(t.key) && t.key == ${celString(key)} && (has(t.value) ? t.value : '') == ${celString(value)})`;
  return `${exists} || ${equal}`;
}

/** Does the toleration let the pod onto nodes tainted key=value (whatever the effect)? */
export function toleratesTaint(
  t: { key?: string; operator?: string; value?: string },
  key: string,
  value: string,
): boolean {
  if (t.operator === 'Exists') return !t.key || t.key === key;
  return (t.operator ?? 'Equal') === 'Equal' && t.key === key && (t.value ?? '') === value;
}

const routeList = (policy: Policy, say: (r: CompiledRoute) => string) =>
  policy.routes.map((r) => `${r.name}: ${say(r)}`).join('; ');

const profileCel = (at: string, field: string, bad: string) =>
  `!has(${at}.securityContext) || !has(${at}.securityContext.${field}) || ${at}.securityContext.${field}.type != '${bad}'`;

const seLinuxCel = (at: string) =>
  `!has(${at}.securityContext) || !has(${at}.securityContext.seLinuxOptions) || (` +
  `(!has(${at}.securityContext.seLinuxOptions.type) || ${at}.securityContext.seLinuxOptions.type in ['', ${SAFE_SELINUX_TYPES.map(celString).join(', ')}]) && ` +
  `(!has(${at}.securityContext.seLinuxOptions.user) || ${at}.securityContext.seLinuxOptions.user == '') && ` +
  `(!has(${at}.securityContext.seLinuxOptions.role) || ${at}.securityContext.seLinuxOptions.role == ''))`;

function seLinuxProblem(context: Json | undefined, at: string): string | undefined {
  const options = context?.seLinuxOptions as Json | undefined;
  if (!options) return undefined;
  if (options.type && !SAFE_SELINUX_TYPES.includes(options.type))
    return `${at}.securityContext.seLinuxOptions.type: "${options.type}" is not one of ${SAFE_SELINUX_TYPES.join(', ')}`;
  if (options.user)
    return `${at}.securityContext.seLinuxOptions.user: build pods may not set an SELinux user`;
  if (options.role)
    return `${at}.securityContext.seLinuxOptions.role: build pods may not set an SELinux role`;
  return undefined;
}

const annotationsOf = (pod: Pod): Record<string, string> => pod.metadata?.annotations ?? {};

/** A profile (seccomp, AppArmor) that is not Unconfined on the pod or any container, plus its other forms. */
function notUnconfined(
  field: 'seccompProfile' | 'appArmorProfile',
  more: (pod: Pod) => string[],
  moreCel: () => string,
  message: string,
): Invariant {
  const problem = (context: Json | undefined, at: string) =>
    (context?.[field] as { type?: string } | undefined)?.type === 'Unconfined'
      ? `${at}.securityContext.${field}.type: Unconfined is not allowed`
      : undefined;
  return {
    when: 'admission',
    corrected: true,
    check: (pod) => [
      ...[problem(pod.spec?.securityContext as Json | undefined, 'spec')].flatMap((p) => p ?? []),
      ...byContainer(pod, (c, at) => problem(c.securityContext, at)),
      ...more(pod),
    ],
    cel: () =>
      [
        profileCel('object.spec', field, 'Unconfined'),
        everyContainer(() => profileCel('c', field, 'Unconfined')),
        moreCel(),
      ]
        .filter((expr) => expr !== 'true')
        .map((expr) => `(${expr})`)
        .join(' && '),
    message: () => message,
  };
}

export const INVARIANTS: readonly Invariant[] = [
  {
    when: 'admission',
    corrected: true,
    check: (pod, _route, policy) =>
      policy.routeOf(pod) ? [] : [`metadata.annotations["${policy.annotations.route}"]: names no route`],
    cel: (policy) => `variables.route in ${celList(policy.routes.map((r) => r.name))}`,
    message: (policy) =>
      `pod was not routed by kata-admission (no valid ${policy.annotations.route} annotation): the webhook is down or bypassed; refusing to run it unisolated`,
  },
  {
    when: 'create',
    corrected: true,
    check: (pod, route, policy) => {
      const current = pod.spec?.runtimeClassName;
      const others = policy.routes.flatMap((r) => (r.runtimeClassName ? [r.runtimeClassName] : []));
      const ok = route.runtimeClassName
        ? current === route.runtimeClassName
        : !current || !others.includes(current);
      return ok ? [] : [`spec.runtimeClassName: "${current ?? ''}" is not the ${route.name} route's`];
    },
    cel: (policy) => {
      const classes = policy.routes.flatMap((r) => (r.runtimeClassName ? [r.runtimeClassName] : []));
      return perRoute(policy, (r) =>
        r.runtimeClassName
          ? `has(object.spec.runtimeClassName) && object.spec.runtimeClassName == ${celString(r.runtimeClassName)}`
          : `!has(object.spec.runtimeClassName) || !(object.spec.runtimeClassName in ${celList(classes)})`,
      );
    },
    message: (policy) =>
      `spec.runtimeClassName is not its route's (${routeList(policy, (r) => r.runtimeClassName ?? "cluster default, never another route's")})`,
  },
  {
    when: 'create',
    corrected: true,
    check: (pod, route) =>
      Object.entries(route.nodeSelector)
        .filter(([k, v]) => pod.spec?.nodeSelector?.[k] !== v)
        .map(([k, v]) => `spec.nodeSelector: ${k}=${v} (the ${route.name} pool) is missing`),
    cel: (policy) =>
      perRoute(
        policy,
        (r) =>
          Object.entries(r.nodeSelector)
            .map(
              ([k, v]) =>
                `has(object.spec.nodeSelector) && ${celString(k)} in object.spec.nodeSelector && object.spec.nodeSelector[${celString(k)}] == ${celString(v)}`,
            )
            .join(' && ') || 'true',
      ),
    message: () => "spec.nodeSelector does not select its route's pool",
  },
  {
    when: 'create',
    corrected: true,
    check: (pod, route) => {
      return (pod.spec?.tolerations ?? []).flatMap((t, i) =>
        route.foreignPools.some(([k, v]) => toleratesTaint(t, k, v))
          ? [`spec.tolerations[${i}]: admits another route's pool`]
          : [],
      );
    },
    cel: (policy) =>
      perRoute(policy, (r) => {
        if (r.foreignPools.length === 0) return 'true';
        return `!has(object.spec.tolerations) || !object.spec.tolerations.exists(t, ${r.foreignPools.map(([k, v]) => toleratesTaintCel(k, v)).join(' || ')})`;
      }),
    message: () => "spec.tolerations admit another route's pool (keyless Exists included)",
  },
  {
    when: 'create',
    corrected: false,
    check: (pod) =>
      pod.spec?.nodeName
        ? [
            `spec.nodeName: build pods are placed by their route's pool, not on a named node ("${pod.spec.nodeName}")`,
          ]
        : [],
    cel: () => "!has(object.spec.nodeName) || object.spec.nodeName == ''",
    message: () => "spec.nodeName is set: build pods are placed by their route's pool",
  },
  {
    when: 'admission',
    corrected: false,
    check: (pod) =>
      HOST_NAMESPACES.filter((f) => pod.spec?.[f] === true).map(
        (f) => `spec.${f}: build pods may not share the node's namespaces`,
      ),
    cel: () => HOST_NAMESPACES.map((f) => `!(has(object.spec.${f}) && object.spec.${f})`).join(' && '),
    message: () => 'spec.hostPID, hostIPC and hostNetwork must be false for build pods',
  },
  {
    when: 'admission',
    corrected: false,
    check: (pod, route) =>
      (pod.spec?.volumes ?? []).flatMap((volume, i) => {
        const path = volume.hostPath?.path;
        return path === undefined || hostPathAllowed(path, route.hostPathPrefixes)
          ? []
          : [
              `spec.volumes[${i}].hostPath.path: "${path}" is outside the ${route.name} route's hostPathPrefixes (${route.hostPathPrefixes.join(', ') || 'none'})`,
            ];
      }),
    cel: () =>
      '!has(object.spec.volumes) || object.spec.volumes.all(vol, !has(vol.hostPath) || (' +
      `!vol.hostPath.path.matches(${celString(DOT_SEGMENT)}) && !vol.hostPath.path.contains('//') && ` +
      "variables.hostPathPrefixes.exists(p, vol.hostPath.path.startsWith(p) || vol.hostPath.path + '/' == p)))",
    message: (policy) =>
      `a hostPath volume lies outside its route's hostPathPrefixes (${routeList(policy, (r) => r.hostPathPrefixes.join(', ') || 'none')})`,
  },
  {
    when: 'admission',
    corrected: true,
    check: (pod, route) =>
      route.anyPrivileged
        ? []
        : byContainer(pod, (c, at, kind) =>
            c.securityContext?.privileged === true && !route.privileged[kind].has(c.name)
              ? `${at}.securityContext.privileged: "${c.name}" may not be privileged on the ${route.name} route`
              : undefined,
          ),
    cel: () =>
      `variables.anyPrivileged || ${everyContainer((list) => `c.name in ${list} || !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged`)}`,
    message: (policy) =>
      `a container is privileged outside its route's allowed ones (${routeList(policy, (r) =>
        r.anyPrivileged
          ? 'any'
          : [...r.privileged.containers, ...[...r.privileged.initContainers].map((n) => `init ${n}`)].join(
              ', ',
            ) || (r.isSandboxed ? 'none' : 'none: no sandbox'),
      )})`,
  },
  {
    when: 'admission',
    corrected: true,
    check: (pod, route) =>
      route.anyPrivileged
        ? []
        : byContainer(pod, (c, at, kind) => {
            if (route.privileged[kind].has(c.name)) return undefined;
            const extra = ((c.securityContext?.capabilities?.add ?? []) as string[]).filter(
              (cap) => !route.capabilities.has(cap.replace(/^CAP_/, '')),
            );
            return extra.length > 0
              ? `${at}.securityContext.capabilities.add: ${extra.join(', ')} not in the ${route.name} route's allowedCapabilities`
              : undefined;
          }),
    cel: () =>
      `variables.anyPrivileged || ${everyContainer(
        (list) =>
          `c.name in ${list} || !has(c.securityContext) || !has(c.securityContext.capabilities) ` +
          '|| !has(c.securityContext.capabilities.add) || c.securityContext.capabilities.add.all(cap, cap in variables.capabilities ' +
          "|| (cap.startsWith('CAP_') && cap.substring(4) in variables.capabilities))",
      )}`,
    message: () => "a container adds a capability outside its route's allowedCapabilities",
  },
  {
    when: 'create',
    corrected: true,
    check: (pod, _route, policy) =>
      policy.config.automountServiceAccountToken || pod.spec?.automountServiceAccountToken === false
        ? []
        : ['spec.automountServiceAccountToken: must be false for build pods'],
    cel: (policy) =>
      policy.config.automountServiceAccountToken
        ? 'true'
        : 'has(object.spec.automountServiceAccountToken) && !object.spec.automountServiceAccountToken',
    message: () => 'spec.automountServiceAccountToken must be false for build pods',
  },
  {
    // Kata reads these to build the VM: only the route may set them, on CREATE and on every UPDATE.
    when: 'always',
    corrected: true,
    check: (pod, route) => {
      const annotations = annotationsOf(pod);
      const wrong = Object.keys(annotations).filter(
        (k) => k.startsWith(KATA_PREFIX) && route.kataAnnotations[k] !== annotations[k],
      );
      const missing = Object.keys(route.kataAnnotations).filter((k) => annotations[k] === undefined);
      return [...wrong, ...missing].map(
        (k) => `metadata.annotations["${k}"]: Kata annotations are exactly the ${route.name} route's`,
      );
    },
    cel: (policy) =>
      `(!has(object.metadata.annotations) || object.metadata.annotations.all(k, !k.startsWith('${KATA_PREFIX}') || ` +
      '(k in variables.kataAnnotations && object.metadata.annotations[k] == variables.kataAnnotations[k]))) && ' +
      'variables.kataAnnotations.all(k, has(object.metadata.annotations) && k in object.metadata.annotations) && ' +
      // On a plain UPDATE the route stays what the webhook wrote: a new one would pick other annotations.
      `(request.operation != 'UPDATE' || request.subResource == 'ephemeralcontainers' || ` +
      `(has(oldObject.metadata.annotations) && ${celString(policy.annotations.route)} in oldObject.metadata.annotations ? ` +
      `oldObject.metadata.annotations[${celString(policy.annotations.route)}] : '') == variables.route)`,
    message: (policy) =>
      `io.katacontainers.* annotations must be exactly the route's, and the route may not change (${routeList(
        policy,
        (r) =>
          Object.entries(r.kataAnnotations)
            .map(([k, v]) => `${k.slice(KATA_PREFIX.length)}=${v}`)
            .join(', ') || 'none',
      )})`,
  },
  {
    when: 'admission',
    corrected: true,
    check: (pod) =>
      byContainer(pod, (c, at) => {
        const i = ((c.ports ?? []) as Json[]).findIndex((p) => p.hostPort);
        return i >= 0 ? `${at}.ports[${i}].hostPort: build pods may not bind node ports` : undefined;
      }),
    cel: () => everyContainer(() => '!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0)'),
    message: () => 'a container sets ports[].hostPort: build pods may not bind node ports',
  },
  notUnconfined(
    'seccompProfile',
    () => [],
    () => 'true',
    'seccompProfile Unconfined is not allowed for build pods',
  ),
  notUnconfined(
    'appArmorProfile',
    (pod) =>
      Object.entries(annotationsOf(pod))
        .filter(([k, v]) => k.startsWith(APPARMOR_ANNOTATION) && v === 'unconfined')
        .map(([k]) => `metadata.annotations["${k}"]: unconfined is not allowed`),
    () =>
      `!has(object.metadata.annotations) || object.metadata.annotations.all(k, !k.startsWith('${APPARMOR_ANNOTATION}') || object.metadata.annotations[k] != 'unconfined')`,
    'AppArmor Unconfined is not allowed for build pods',
  ),
  {
    when: 'admission',
    corrected: false,
    check: (pod) => [
      ...[seLinuxProblem(pod.spec?.securityContext as Json | undefined, 'spec')].flatMap((p) => p ?? []),
      ...byContainer(pod, (c, at) => seLinuxProblem(c.securityContext, at)),
    ],
    cel: () => `(${seLinuxCel('object.spec')}) && ${everyContainer(() => seLinuxCel('c'))}`,
    message: () =>
      `seLinuxOptions: the type must be one of ${SAFE_SELINUX_TYPES.join(', ')}, and user and role unset`,
  },
  {
    when: 'admission',
    corrected: true,
    check: (pod) =>
      byContainer(pod, (c, at) =>
        c.securityContext?.procMount && c.securityContext.procMount !== 'Default'
          ? `${at}.securityContext.procMount: only Default is allowed`
          : undefined,
      ),
    cel: () =>
      everyContainer(
        () =>
          "!has(c.securityContext) || !has(c.securityContext.procMount) || c.securityContext.procMount == 'Default'",
      ),
    message: () => 'securityContext.procMount must be Default for build pods',
  },
  {
    when: 'admission',
    corrected: false,
    check: (pod) =>
      (pod.spec?.securityContext?.sysctls ?? []).flatMap((s, i) =>
        (SAFE_SYSCTLS as readonly string[]).includes(s.name)
          ? []
          : [`spec.securityContext.sysctls[${i}].name: "${s.name}" is not a safe sysctl`],
      ),
    cel: () =>
      `!has(object.spec.securityContext) || !has(object.spec.securityContext.sysctls) || object.spec.securityContext.sysctls.all(s, s.name in ${celList(SAFE_SYSCTLS)})`,
    message: () => `only the safe sysctls are allowed (${SAFE_SYSCTLS.join(', ')})`,
  },
];

// The rows for each kind of request, chosen once.
const ROWS = {
  CREATE: INVARIANTS,
  EPHEMERAL: INVARIANTS.filter((row) => row.when !== 'create'),
  SHADOW_CREATE: INVARIANTS.filter((row) => !row.corrected),
  SHADOW_EPHEMERAL: INVARIANTS.filter((row) => !row.corrected && row.when !== 'create'),
};

/**
 * What is wrong with this pod on this route for this request: every applicable row's problems.
 * `onlyUncorrected`: the rows the mutation cannot fix (shadow mode checks the submitted pod).
 */
export function violations(
  pod: Pod,
  route: CompiledRoute,
  policy: Policy,
  operation: 'CREATE' | 'EPHEMERAL',
  onlyUncorrected = false,
): string[] {
  const rows = ROWS[onlyUncorrected ? (`SHADOW_${operation}` as const) : operation];
  const found: string[] = [];
  for (const row of rows) for (const problem of row.check(pod, route, policy)) found.push(problem);
  return found;
}
