// The webhook as operators run it: the Deployment of deploy/, from the image the project builds,
// on the real node, installed with the real `kubectl apply -k`; builds are then routed by it, not
// by a process of the test's. The test overlay keeps every byte on loopback: the pods use the
// node's network (hostNetwork) on a free port bound to 127.0.0.1 (both replicas and, during a
// rollout, the surge pod share it with --reuse-port), the API server calls it on 127.0.0.1, the
// probes ask 127.0.0.1, and the in-cluster client reaches the API server there. On one port the
// kernel hands each probe to either process, so readiness is the port's, not one pod's.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { V1Deployment, V1Pod, V1PodDisruptionBudget } from '@kubernetes/client-node';
import { ANNOTATION } from '../helpers.js';
import { freePort } from '../cluster/controlplane.js';
import { DEPLOY } from '../cluster/deploy.js';
import { Cluster, errorText, podFrom } from '../cluster/harness.js';
import { nodeUnsupported } from '../cluster/node.js';
import { watchUntil } from '../cluster/watch.js';
import { buildahIn, buildImage, type Buildah } from '../image/build.js';

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
    assert.equal(available.status!.availableReplicas, 2);
  });

  it('routes a build: the API server called the Deployment', async () => {
    const pod = await cluster.createAsExecutor(podFrom('build-plain'));
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.equal(pod.spec!.automountServiceAccountToken, false);
  });

  it('the PodDisruptionBudget lets one replica be evicted at a time', async () => {
    await watchUntil<V1PodDisruptionBudget>(
      cluster.cp.admin,
      '/apis/policy/v1/namespaces/kata-admission/poddisruptionbudgets',
      { fieldSelector: 'metadata.name=kata-admission' },
      (pdb) => pdb.status?.currentHealthy === 2 && pdb.status.disruptionsAllowed === 1,
      { timeoutMs: 60_000, what: 'the PodDisruptionBudget to allow one disruption' },
    );
    const [first, second] = await webhookPods(cluster);
    const gone = watchUntil<V1Pod>(
      cluster.cp.admin,
      '/api/v1/namespaces/kata-admission/pods',
      { fieldSelector: `metadata.name=${first!.metadata!.name}` },
      (_pod, type) => type === 'DELETED',
      { timeoutMs: 120_000, what: 'the evicted replica to go' },
    );
    await evict(cluster, first!);
    await assert.rejects(evict(cluster, second!), (e) => /429|disruption budget/i.test(errorText(e)));
    await gone;
    await deploymentAvailable(cluster, 120_000, 2);
  });

  it('a rolling restart under pod creation refuses no build and lets none through unrouted', async () => {
    const before = new Set((await webhookPods(cluster)).map((p) => p.metadata!.uid));
    cluster.kubectl(['rollout', 'restart', 'deployment/kata-admission', '-n', 'kata-admission']);
    const generation = Number(
      cluster.kubectl([
        'get',
        'deployment/kata-admission',
        '-n',
        'kata-admission',
        '-o',
        'jsonpath={.metadata.generation}',
      ]),
    );
    let done = false;
    const rolled = rolledOut(cluster, generation, 180_000).finally(() => (done = true));
    // Dry runs: the API server calls the webhook and the guard as for a stored pod, and no build runs.
    const answers: { route?: string; runtimeClassName?: string; error?: string }[] = [];
    while (!done) {
      try {
        const pod = await cluster.createAsExecutor(podFrom('build-plain'), 'All');
        answers.push({
          route: pod.metadata!.annotations![ANNOTATION('route')],
          runtimeClassName: pod.spec!.runtimeClassName!,
        });
      } catch (error) {
        answers.push({ error: errorText(error) });
      }
    }
    await rolled;
    const after = await webhookPods(cluster);
    assert.equal(after.length, 2);
    assert.ok(
      after.every((p) => !before.has(p.metadata!.uid)),
      'both replicas were replaced',
    );
    assert.ok(answers.length > 20, `builds were created throughout the rollout (${answers.length})`);
    assert.deepEqual(
      answers.filter((a) => a.error || a.route !== 'kata' || a.runtimeClassName !== 'kata'),
      [],
      'every build admitted and routed',
    );
  });
});

const webhookPods = async (cluster: Cluster): Promise<V1Pod[]> =>
  (
    await cluster.asAdmin.listNamespacedPod({
      namespace: 'kata-admission',
      labelSelector: 'app.kubernetes.io/name=kata-admission',
    })
  ).items.filter((p) => !p.metadata!.deletionTimestamp);

const evict = (cluster: Cluster, pod: V1Pod) =>
  cluster.asAdmin.createNamespacedPodEviction({
    name: pod.metadata!.name!,
    namespace: 'kata-admission',
    body: { metadata: { name: pod.metadata!.name!, namespace: 'kata-admission' } },
  });

/** The rollout of `generation` is complete: every replica new and available, no old pod left. */
const rolledOut = (cluster: Cluster, generation: number, timeoutMs: number) =>
  watchUntil<V1Deployment>(
    cluster.cp.admin,
    '/apis/apps/v1/namespaces/kata-admission/deployments',
    { fieldSelector: 'metadata.name=kata-admission' },
    (d) =>
      (d.status?.observedGeneration ?? 0) >= generation &&
      d.status?.updatedReplicas === 2 &&
      d.status.availableReplicas === 2 &&
      d.status.replicas === 2,
    { timeoutMs, what: 'the rollout to finish' },
  );

/**
 * JSON patches for the Deployment: its replicas and rollout strategy as shipped, on the node's
 * network, sharing one port on loopback.
 */
function loopbackDeployment(port: number, apiServerPort: string) {
  const c = '/spec/template/spec/containers/0';
  return [
    { op: 'add', path: '/spec/template/spec/hostNetwork', value: true },
    { op: 'add', path: '/spec/template/spec/dnsPolicy', value: 'ClusterFirstWithHostNet' },
    { op: 'add', path: `${c}/args/-`, value: '--host=127.0.0.1' },
    { op: 'add', path: `${c}/args/-`, value: '--reuse-port' },
    { op: 'replace', path: `${c}/args/4`, value: `--port=${port}` },
    // On the node's network a declared port is a host port, which only one pod per node may hold.
    { op: 'remove', path: `${c}/ports` },
    { op: 'replace', path: `${c}/readinessProbe/httpGet/port`, value: port },
    { op: 'replace', path: `${c}/livenessProbe/httpGet/port`, value: port },
    { op: 'add', path: `${c}/readinessProbe/httpGet/host`, value: '127.0.0.1' },
    { op: 'add', path: `${c}/livenessProbe/httpGet/host`, value: '127.0.0.1' },
    // The in-cluster client's address of the API server (there is no kube-proxy for its Service).
    { op: 'add', path: `${c}/env/-`, value: { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' } },
    { op: 'add', path: `${c}/env/-`, value: { name: 'KUBERNETES_SERVICE_PORT', value: apiServerPort } },
  ];
}

const deploymentAvailable = (cluster: Cluster, timeoutMs: number, replicas = 2) =>
  watchUntil<V1Deployment>(
    cluster.cp.admin,
    '/apis/apps/v1/namespaces/kata-admission/deployments',
    { fieldSelector: 'metadata.name=kata-admission' },
    (d) =>
      (d.status?.availableReplicas ?? 0) >= replicas &&
      !!d.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True'),
    { timeoutMs, what: 'the Deployment Available' },
  );
