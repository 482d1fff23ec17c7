// Another mutating webhook, as clusters have them (sidecar injectors, label policies): a small
// HTTPS server that adds an init container, a label or a nodeSelector to every pod it is sent.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KeyPair } from '../../src/tls/certs.js';

export type Injection =
  | { initImage: string }
  | { label: [string, string] }
  | { nodeSelector: [string, string] }
  /** A hardening webhook: every container unprivileged, without privilege escalation. */
  | { harden: true };

const HARDENED = { privileged: false, allowPrivilegeEscalation: false };

function patchFor(
  pod: {
    metadata?: { labels?: object };
    spec?: { initContainers?: unknown[]; nodeSelector?: object; containers?: unknown[] };
  },
  injection: Injection,
): object[] {
  if ('harden' in injection)
    return (pod.spec?.containers ?? []).map((_, i) => ({
      op: 'add',
      path: `/spec/containers/${i}/securityContext`,
      value: HARDENED,
    }));
  if ('initImage' in injection) {
    const container = { name: 'injected', image: injection.initImage, command: ['true'] };
    return pod.spec?.initContainers
      ? [{ op: 'add', path: '/spec/initContainers/-', value: container }]
      : [{ op: 'add', path: '/spec/initContainers', value: [container] }];
  }
  const [field, [key, value]] =
    'label' in injection
      ? ['/metadata/labels', injection.label]
      : ['/spec/nodeSelector', injection.nodeSelector];
  const exists = 'label' in injection ? pod.metadata?.labels : pod.spec?.nodeSelector;
  return exists
    ? [{ op: 'add', path: `${field}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`, value }]
    : [{ op: 'add', path: field, value: { [key]: value } }];
}

/** Serves /mutate; the injection is the one in force when the request arrives. */
export async function startInjector(
  serving: KeyPair,
  injection: () => Injection,
): Promise<{ url: string; server: Server }> {
  const server = createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const pod = review.request.object;
      const already =
        'initImage' in injection() &&
        (pod.spec?.initContainers ?? []).some((c: { name: string }) => c.name === 'injected');
      const patch = already ? [] : patchFor(pod, injection());
      const response = {
        uid: review.request.uid,
        allowed: true,
        ...(patch.length > 0 && {
          patchType: 'JSONPatch',
          patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
        }),
      };
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/mutate`, server };
}

/** A webhook configuration that sorts before ("a-…") or after ("z-…") kata-admission's. */
export function injectorConfiguration(
  name: string,
  url: string,
  caPem: string,
  reinvocationPolicy: 'IfNeeded' | 'Never' = 'IfNeeded',
) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: `${name}.injector.test`,
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        reinvocationPolicy,
        clientConfig: { url, caBundle: Buffer.from(caPem).toString('base64') },
        rules: [
          {
            operations: ['CREATE'],
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods'],
            scope: 'Namespaced',
          },
        ],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'sd-build-namespace' } },
      },
    ],
  };
}
