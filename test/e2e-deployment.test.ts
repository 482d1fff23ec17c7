// The webhook as operators run it: the Deployment of deploy/, from the image the project builds,
// on the real node, installed with the real `kubectl apply -k`; builds are then routed by it, not
// by a process of the test's. The test overlay keeps every byte on loopback: the pod uses the
// node's network (hostNetwork) on a free port bound to 127.0.0.1, the API server calls it on
// 127.0.0.1, its probes ask 127.0.0.1, and its in-cluster client reaches the API server there.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Deployment } from '@kubernetes/client-node';
import { ANNOTATION } from './helpers.js';
import { freePort } from './cluster/controlplane.js';
import { DEPLOY } from './cluster/deploy.js';
import { Cluster, podFrom } from './cluster/harness.js';
import { nodeUnsupported } from './cluster/node.js';
import { watchUntil } from './cluster/watch.js';
import { buildahIn, buildImage, type Buildah } from './image/build.js';

const unsupported = nodeUnsupported();
if (unsupported) console.warn(`\n*** SKIPPING the Deployment-on-a-node suite: ${unsupported} ***\n`);

describe('the shipped Deployment on a real node', { skip: unsupported, timeout: 20 * 60_000 }, () => {
  let cluster: Cluster;
  let buildah: Buildah;
  let port: number;

  before(async () => {
    cluster = await Cluster.install();
    await cluster.startNode();
    buildah = buildahIn(cluster.dir);
    const image = `${cluster.registry!.host}/kata-admission:test`;
    buildImage(buildah, image);
    port = await freePort();
    const tls = join(cluster.dir, 'tls');
    // The serving certificate the Deployment mounts (cert-manager's or the operator's, in a cluster).
    await cluster.asAdmin.createNamespacedSecret({
      namespace: 'kata-admission',
      body: {
        metadata: { name: 'kata-admission-tls' },
        type: 'kubernetes.io/tls',
        stringData: {
          'tls.crt': readFileSync(join(tls, 'tls.crt'), 'utf8'),
          'tls.key': readFileSync(join(tls, 'tls.key'), 'utf8'),
          'ca.crt': cluster.caPem,
        },
      },
    });
    const deployment = loopbackDeployment(port, new URL(cluster.cp.url).port);
    cluster.applyOverlay(
      'overlay-deployment',
      {
        resources: [join(DEPLOY, 'overlays', 'enforce')],
        images: [
          {
            name: 'registry.example.com/ci/kata-admission',
            newName: image.replace(/:test$/, ''),
            newTag: 'test',
          },
        ],
        patches: [
          { target: { kind: 'Deployment', name: 'kata-admission' }, patch: JSON.stringify(deployment) },
          // The node's network is what keeps the test on loopback; Pod Security "restricted" forbids it.
          {
            target: { kind: 'Namespace', name: 'kata-admission' },
            patch: JSON.stringify([
              {
                op: 'replace',
                path: '/metadata/labels/pod-security.kubernetes.io~1enforce',
                value: 'privileged',
              },
            ]),
          },
        ],
      },
      `https://127.0.0.1:${port}/mutate`,
    );
  });
  after(async () => {
    await cluster?.stop();
    buildah?.clean();
  });

  it('becomes Available from the built image, its probes passing', async () => {
    const available = await deploymentAvailable(cluster, 180_000).catch((error: Error) => {
      // What the pod went through, for whoever reads the failure.
      const events = cluster.kubectl([
        'get',
        'events',
        '-n',
        'kata-admission',
        '-o',
        'custom-columns=R:.reason,M:.message',
      ]);
      const pods = cluster.kubectl([
        'get',
        'pods',
        '-n',
        'kata-admission',
        '-o',
        'jsonpath={.items[*].status}',
      ]);
      throw new Error(`${error.message}\n${events}\n${pods}`);
    });
    assert.equal(available.status!.availableReplicas, 1);
  });

  it('routes a build: the API server called the Deployment', async () => {
    const pod = await cluster.createAsExecutor(podFrom('build-plain'));
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.equal(pod.spec!.automountServiceAccountToken, false);
  });
});

/** JSON patches for the Deployment: one replica on the node's network, everything on loopback. */
function loopbackDeployment(port: number, apiServerPort: string) {
  const c = '/spec/template/spec/containers/0';
  return [
    { op: 'replace', path: '/spec/replicas', value: 1 },
    // One port on one node: the old pod goes before the new one binds it.
    { op: 'replace', path: '/spec/strategy/rollingUpdate', value: { maxUnavailable: 1, maxSurge: 0 } },
    { op: 'add', path: '/spec/template/spec/hostNetwork', value: true },
    { op: 'add', path: '/spec/template/spec/dnsPolicy', value: 'ClusterFirstWithHostNet' },
    { op: 'add', path: `${c}/args/-`, value: '--host=127.0.0.1' },
    { op: 'replace', path: `${c}/args/4`, value: `--port=${port}` },
    { op: 'replace', path: `${c}/ports/0/containerPort`, value: port },
    { op: 'add', path: `${c}/readinessProbe/httpGet/host`, value: '127.0.0.1' },
    { op: 'add', path: `${c}/livenessProbe/httpGet/host`, value: '127.0.0.1' },
    // The in-cluster client's address of the API server (there is no kube-proxy for its Service).
    { op: 'add', path: `${c}/env/-`, value: { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' } },
    { op: 'add', path: `${c}/env/-`, value: { name: 'KUBERNETES_SERVICE_PORT', value: apiServerPort } },
  ];
}

const deploymentAvailable = (cluster: Cluster, timeoutMs: number) =>
  watchUntil<V1Deployment>(
    cluster.cp.admin,
    '/apis/apps/v1/namespaces/kata-admission/deployments',
    { fieldSelector: 'metadata.name=kata-admission' },
    (d) =>
      (d.status?.availableReplicas ?? 0) >= 1 &&
      !!d.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True'),
    { timeoutMs, what: 'the Deployment Available' },
  );
