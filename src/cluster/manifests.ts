// `kata-admission manifests`: the parts of deploy/ that say what the config says (ConfigMap, webhook
// configuration, guard, RuntimeClasses), written from the config so no human keeps two lists in step.
// deploy/rendered/ holds this output for the embedded default config; a test keeps them identical.
import { stringify } from 'yaml';
import type { Policy } from '../policy/policy.js';
import { guardPolicy } from './guard.js';

/** The webhook's own namespace: never in the webhook's or the guard's scope. */
const WEBHOOK_NAMESPACE = 'kata-admission';
const NEVER = ['kube-system', 'kube-public', 'kube-node-lease', WEBHOOK_NAMESPACE];

/** What the base installs: nothing blocks builds before the webhook serves (the enforce component tightens both). */
const INSTALL_FAILURE_POLICY = 'Ignore';
const INSTALL_VALIDATION_ACTIONS = ['Warn', 'Audit'];

/** File name in deploy/rendered/ -> its documents. */
export type RenderedManifests = Record<string, { comment: string; documents: Record<string, unknown>[] }>;

/** Pod CREATEs and ephemeral-container updates in the build namespaces, whatever their labels (unless otherPods: allow). */
function scope(policy: Policy) {
  const namespaceSelector = {
    matchExpressions: [
      { key: 'kubernetes.io/metadata.name', operator: 'In', values: [...policy.config.namespaces] },
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: NEVER },
    ],
  };
  return {
    rules: [
      {
        operations: ['CREATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods'],
        scope: 'Namespaced',
      },
      {
        operations: ['UPDATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['pods/ephemeralcontainers'],
        scope: 'Namespaced',
      },
    ],
    namespaceSelector,
    ...(policy.config.otherPods === 'allow' && { objectSelector: policy.config.podSelector }),
  };
}

function webhookConfiguration(policy: Policy) {
  const { rules, ...selectors } = scope(policy);
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'kata-admission' },
    webhooks: [
      {
        name: 'route.kata-admission.screwdriver.cd',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: INSTALL_FAILURE_POLICY,
        matchPolicy: 'Equivalent',
        reinvocationPolicy: 'IfNeeded',
        timeoutSeconds: 5,
        clientConfig: {
          service: { name: 'kata-admission', namespace: WEBHOOK_NAMESPACE, path: '/mutate', port: 443 },
        },
        rules,
        ...selectors,
      },
    ],
  };
}

function guard(policy: Policy) {
  const { rules, ...selectors } = scope(policy);
  // The guard also sees plain pod UPDATEs: annotations stay mutable on a pending pod (Kata's among them).
  const resourceRules = rules.map(({ scope: _scope, ...rule }) =>
    rule.resources[0] === 'pods' ? { ...rule, operations: ['CREATE', 'UPDATE'] } : rule,
  );
  const match = { resourceRules, ...selectors };
  return [
    guardPolicy(policy, match),
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: 'kata-admission-guard' },
      spec: { policyName: 'kata-admission-guard', validationActions: INSTALL_VALIDATION_ACTIONS },
    },
  ];
}

/** One RuntimeClass per distinct name: routes that share a class (kata and kata with vsyscall=emulate) share its pool. */
function runtimeClasses(policy: Policy) {
  const first = policy.routes.filter(
    (route, i) =>
      route.runtimeClassName !== null &&
      policy.routes.findIndex((r) => r.runtimeClassName === route.runtimeClassName) === i,
  );
  return first.flatMap((route) =>
    route.runtimeClassName === null
      ? []
      : [
          {
            apiVersion: 'node.k8s.io/v1',
            kind: 'RuntimeClass',
            metadata: { name: route.runtimeClassName },
            handler: route.runtimeClassName,
            overhead: { podFixed: route.runtimeClassOverhead },
            scheduling: { nodeSelector: route.nodeSelector, tolerations: route.addedTolerations },
          },
        ],
  );
}

/** The TCP port of a host[:port] or URL as a registry client connects to it (443 unless said, 80 for http). */
function portOf(address: string, insecure: boolean): number {
  const url = new URL(address.includes('://') ? address : `${insecure ? 'http' : 'https'}://${address}`);
  return url.port ? Number(url.port) : url.protocol === 'http:' ? 80 : 443;
}

/**
 * Egress for DNS, the API server and the registries the config names (their mirrors, blob hosts
 * and token realms): by port, since a NetworkPolicy cannot name hosts. Ingress to the webhook only.
 */
function networkPolicy(policy: Policy) {
  const { registries, otherRegistries, content } = policy.config.imageInspection;
  const ports = new Set([443, 6443]);
  for (const [name, r] of Object.entries(registries)) {
    for (const host of [r.mirror ?? name, ...r.blobHosts]) ports.add(portOf(host, r.insecure));
    for (const realm of r.tokenRealms) ports.add(portOf(realm, false));
  }
  const anyRegistry = otherRegistries === 'inspect' || content.otherRegistries === 'scan';
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'kata-admission', namespace: WEBHOOK_NAMESPACE },
    spec: {
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'kata-admission' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ ports: [{ protocol: 'TCP', port: 8443 }] }],
      egress: [
        {
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
        // otherRegistries lets images name any registry, on any port: egress cannot be narrowed then.
        anyRegistry
          ? {}
          : { ports: [...ports].sort((a, b) => a - b).map((port) => ({ protocol: 'TCP', port })) },
      ],
    },
  };
}

export function renderManifests(policy: Policy, configText: string): RenderedManifests {
  return {
    'networkpolicy.yaml': {
      comment:
        'Ingress only to the webhook port (the API server comes from anywhere); egress only to DNS, the\n' +
        "API server (443, 6443) and the ports of the config's registries (docs/security.md).",
      documents: [networkPolicy(policy)],
    },
    'configmap.yaml': {
      comment:
        'The routing config (docs/configuration.md). Edits reach running pods within a minute or so\n' +
        "(the kubelet's ConfigMap sync) and apply without a restart; an invalid edit is logged and ignored.",
      documents: [
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: 'kata-admission-config', namespace: WEBHOOK_NAMESPACE },
          data: { 'config.yaml': configText },
        },
      ],
    },
    'mutatingwebhook.yaml': {
      comment:
        `Every pod CREATE and ephemeral-container update in the build namespaces. failurePolicy ${INSTALL_FAILURE_POLICY} only\n` +
        'until the webhook serves: deploy/components/enforce sets Fail (docs/install.md: Isolation).',
      documents: [webhookConfiguration(policy)],
    },
    'guard.yaml': {
      comment:
        'The guard: the API server checks what each pod in a build namespace is after all mutation.\n' +
        `[${INSTALL_VALIDATION_ACTIONS.join(', ')}] until the webhook serves: deploy/components/enforce sets [Deny].`,
      documents: guard(policy),
    },
    'runtimeclass.yaml': {
      comment:
        "One RuntimeClass per route that names one, scheduling onto the route's pool. Skip this file when\n" +
        'kata-deploy installed the RuntimeClasses (the self-check then compares theirs with the config).',
      documents: runtimeClasses(policy),
    },
  };
}

/** A rendered file's text: a "generated" header, then its documents as YAML. */
export function manifestText(file: RenderedManifests[string]): string {
  const header = [
    'Generated by `kata-admission manifests` from the config; do not edit by hand.',
    ...file.comment.split('\n'),
  ]
    .map((line) => `# ${line}`)
    .join('\n');
  return `${header}\n${file.documents.map((d) => stringify(d, { lineWidth: 0 })).join('---\n')}`;
}

/** The kustomization.yaml of a rendered folder, so an overlay can list the folder as a resource. */
export function kustomizationText(rendered: RenderedManifests): string {
  return (
    '# Generated by `kata-admission manifests --out` with the files beside it; do not edit by hand.\n' +
    stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: Object.keys(rendered),
    })
  );
}

/** The chart's `rendered` value: the same objects by file name, which replace the chart's defaults. */
export function helmValuesText(
  rendered: RenderedManifests,
  configFile = 'the embedded default config',
): string {
  const files = Object.fromEntries(
    Object.entries(rendered).map(([file, { documents }]) => [file, documents]),
  );
  return (
    `# Generated by \`kata-admission manifests --helm-values\` from ${configFile}; do not edit by hand.\n` +
    '# Pass it on every helm install and upgrade: -f this-file (docs/install.md: Helm).\n' +
    stringify({ rendered: files }, { lineWidth: 0 })
  );
}
