// The guard: a ValidatingAdmissionPolicy whose CEL is written from the config, so the API server
// itself checks what every pod in a build namespace *is* after all mutation (docs/security.md). The
// route annotation only says which route's invariants apply: a forged one gains nothing.
import { celList, celString, INVARIANTS, listVariable, type Invariant } from '../policy/invariants.js';
import { CONTAINER_KINDS } from '../kube/pod.js';
import type { CompiledRoute, Policy } from '../policy/policy.js';

interface Validation {
  expression: string;
  message: string;
  reason: 'Forbidden';
}

/** A CEL value chosen by the pod's route: nested conditionals, `otherwise` for a pod on no route. */
function byRoute(policy: Policy, value: (route: CompiledRoute) => string, otherwise: string): string {
  return policy.routes.reduceRight(
    (rest, r) => `variables.route == ${celString(r.name)} ? ${value(r)} : ${rest}`,
    otherwise,
  );
}

const celMap = (entries: Record<string, string>) =>
  `{${Object.entries(entries)
    .map(([k, v]) => `${celString(k)}: ${celString(v)}`)
    .join(', ')}}`;

function routeVariables(policy: Policy) {
  return [
    { name: 'anyPrivileged', expression: byRoute(policy, (r) => String(r.anyPrivileged), 'false') },
    ...CONTAINER_KINDS.map((kind) => ({
      name: listVariable(kind),
      expression: byRoute(policy, (r) => celList(r.privileged[kind]), '[]'),
    })),
    { name: 'capabilities', expression: byRoute(policy, (r) => celList(r.capabilities), '[]') },
    { name: 'hostPathPrefixes', expression: byRoute(policy, (r) => celList(r.hostPathPrefixes), '[]') },
    { name: 'kataAnnotations', expression: byRoute(policy, (r) => celMap(r.kataAnnotations), '{}') },
  ];
}

/** When a row applies, in CEL: placement at CREATE; the pod's content at CREATE and ephemeral updates; some always. */
const WHEN: Record<Invariant['when'], (expr: string) => string> = {
  create: (expr) => `request.operation != 'CREATE' || (${expr})`,
  admission: (expr) =>
    `(request.operation == 'UPDATE' && request.subResource != 'ephemeralcontainers') || (${expr})`,
  always: (expr) => expr,
};

function validations(policy: Policy): Validation[] {
  return INVARIANTS.flatMap((row) => {
    const expression = row.cel(policy);
    if (expression === 'true') return [];
    return [
      { expression: WHEN[row.when](expression), message: row.message(policy), reason: 'Forbidden' as const },
    ];
  });
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
