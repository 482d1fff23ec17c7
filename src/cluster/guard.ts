// The guard: a ValidatingAdmissionPolicy whose CEL is written from the config, so the API server
// itself checks what every pod in a build namespace *is* after all mutation (SPEC section 3). The
// route annotation only says which route's invariants apply: a forged one gains nothing.
import type { CompiledRoute, Policy } from '../policy/policy.js';
import { DOT_SEGMENT } from '../policy/refusals.js';

interface Validation {
  expression: string;
  message: string;
  reason: 'Forbidden';
}

/** A CEL string literal. */
export const celString = (s: string) => `'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
const celList = (items: readonly string[]) => `[${items.map(celString).join(', ')}]`;
const KINDS = ['containers', 'initContainers', 'ephemeralContainers'] as const;

/** `check(route)` for the pod's route; routes whose check is `true` are left out. */
function perRoute(policy: Policy, check: (route: CompiledRoute) => string): string {
  const parts = policy.routes
    .map((route) => [route, check(route)] as const)
    .filter(([, expr]) => expr !== 'true')
    .map(([route, expr]) => `(variables.route != ${celString(route.name)} || (${expr}))`);
  return parts.length > 0 ? parts.join(' && ') : 'true';
}

/** Placement is fixed at CREATE; an ephemeral-containers UPDATE sees the scheduler's nodeName. */
const onCreate = (expr: string) => `request.operation != 'CREATE' || (${expr})`;
const field = (path: string) => `has(object.spec.${path}) && object.spec.${path}`;

/** A CEL value chosen by the pod's route: nested conditionals, `otherwise` for a pod on no route. */
function byRoute(policy: Policy, value: (route: CompiledRoute) => string, otherwise: string): string {
  return policy.routes.reduceRight(
    (rest, r) => `variables.route == ${celString(r.name)} ? ${value(r)} : ${rest}`,
    otherwise,
  );
}

function routeVariables(policy: Policy) {
  return [
    { name: 'anyPrivileged', expression: byRoute(policy, (r) => String(r.allowPrivileged), 'false') },
    { name: 'privileged', expression: byRoute(policy, (r) => celList([...r.privileged]), '[]') },
    { name: 'capabilities', expression: byRoute(policy, (r) => celList([...r.capabilities]), '[]') },
    { name: 'hostPathPrefixes', expression: byRoute(policy, (r) => celList(r.hostPathPrefixes), '[]') },
  ];
}

function everyContainer(check: string): string {
  return KINDS.map((kind) => `(!has(object.spec.${kind}) || object.spec.${kind}.all(c, ${check}))`).join(
    ' && ',
  );
}

/** A toleration `t` that admits nodes tainted key=value (any effect), keyless Exists included. */
function toleratesTaint(key: string, value: string): string {
  const exists = `(has(t.operator) && t.operator == 'Exists' && (!has(t.key) || t.key == '' || t.key == ${celString(key)}))`;
  const equal = `((!has(t.operator) || t.operator == 'Equal') && has(t.key) && t.key == ${celString(key)} && (has(t.value) ? t.value : '') == ${celString(value)})`;
  return `${exists} || ${equal}`;
}

function validations(policy: Policy): Validation[] {
  const routes = policy.routes;
  const runtimeClasses = routes.flatMap((r) => (r.runtimeClassName ? [r.runtimeClassName] : []));
  const v = (expression: string, message: string): Validation => ({
    expression,
    message,
    reason: 'Forbidden',
  });
  return [
    v(
      `variables.route in ${celList(routes.map((r) => r.name))}`,
      `pod was not routed by kata-admission (no valid ${policy.annotations.route} annotation): the webhook is down or bypassed; refusing to run it unisolated`,
    ),
    v(
      onCreate(
        perRoute(policy, (r) =>
          r.runtimeClassName
            ? `has(object.spec.runtimeClassName) && object.spec.runtimeClassName == ${celString(r.runtimeClassName)}`
            : `!has(object.spec.runtimeClassName) || !(object.spec.runtimeClassName in ${celList(runtimeClasses)})`,
        ),
      ),
      `spec.runtimeClassName is not its route's (${routes.map((r) => `${r.name}: ${r.runtimeClassName ?? "cluster default, never another route's"}`).join('; ')})`,
    ),
    v(
      onCreate(
        perRoute(
          policy,
          (r) =>
            Object.entries(r.nodeSelector)
              .map(
                ([k, val]) =>
                  `has(object.spec.nodeSelector) && ${celString(k)} in object.spec.nodeSelector && object.spec.nodeSelector[${celString(k)}] == ${celString(val)}`,
              )
              .join(' && ') || 'true',
        ),
      ),
      "spec.nodeSelector does not select its route's pool",
    ),
    v(
      onCreate(
        perRoute(policy, (r) => {
          const foreign = routes
            .filter((o) => o !== r)
            .flatMap((o) => Object.entries(o.nodeSelector))
            .filter(([k, val]) => r.nodeSelector[k] !== val);
          if (foreign.length === 0) return 'true';
          return `!has(object.spec.tolerations) || !object.spec.tolerations.exists(t, ${foreign.map(([k, val]) => toleratesTaint(k, val)).join(' || ')})`;
        }),
      ),
      "spec.tolerations admit another route's pool (keyless Exists included)",
    ),
    v(
      onCreate("!has(object.spec.nodeName) || object.spec.nodeName == ''"),
      "spec.nodeName is set: build pods are placed by their route's pool",
    ),
    v(
      ['hostPID', 'hostIPC', 'hostNetwork'].map((f) => `!(${field(f)})`).join(' && '),
      'spec.hostPID, hostIPC and hostNetwork must be false for build pods',
    ),
    v(
      '!has(object.spec.volumes) || object.spec.volumes.all(vol, !has(vol.hostPath) || (' +
        `!vol.hostPath.path.matches(${celString(DOT_SEGMENT)}) && !vol.hostPath.path.contains('//') && ` +
        "variables.hostPathPrefixes.exists(p, vol.hostPath.path.startsWith(p) || vol.hostPath.path + '/' == p)))",
      `a hostPath volume lies outside its route's hostPathPrefixes (${routes.map((r) => `${r.name}: ${r.hostPathPrefixes.join(', ') || 'none'}`).join('; ')})`,
    ),
    v(
      `variables.anyPrivileged || ${everyContainer('c.name in variables.privileged || !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged')}`,
      `a container is privileged outside its route's allowed ones (${routes.map((r) => `${r.name}: ${r.allowPrivileged ? 'any' : [...r.privileged].join(', ') || 'none'}`).join('; ')})`,
    ),
    v(
      `variables.anyPrivileged || ${everyContainer(
        'c.name in variables.privileged || !has(c.securityContext) || !has(c.securityContext.capabilities) ' +
          '|| !has(c.securityContext.capabilities.add) || c.securityContext.capabilities.add.all(cap, cap in variables.capabilities ' +
          "|| (cap.startsWith('CAP_') && cap.substring(4) in variables.capabilities))",
      )}`,
      "a container adds a capability outside its route's allowedCapabilities",
    ),
    ...(policy.config.automountServiceAccountToken
      ? []
      : [
          v(
            onCreate(
              'has(object.spec.automountServiceAccountToken) && !object.spec.automountServiceAccountToken',
            ),
            'spec.automountServiceAccountToken must be false for build pods',
          ),
        ]),
  ];
}

export function guardPolicy(policy: Policy, match: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name: 'kata-admission-guard' },
    spec: {
      failurePolicy: 'Fail',
      matchConstraints: match,
      variables: [
        {
          name: 'route',
          expression:
            `has(object.metadata.annotations) && ${celString(policy.annotations.route)} in object.metadata.annotations ` +
            `? object.metadata.annotations[${celString(policy.annotations.route)}] : ''`,
        },
        ...routeVariables(policy),
      ],
      validations: validations(policy),
    },
  };
}
