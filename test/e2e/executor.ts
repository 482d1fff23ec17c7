// Screwdriver's real executor (screwdriver-executor-k8s: its own HTTP client, its own pod template)
// starting builds against a real kube-apiserver with kata-admission installed from deploy/, and
// another mutating webhook sorted before and after kata-admission: the stored pods are read back.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { explanation, reviewForPod } from '../../src/cli/explanation.js';
import { reviewAdmission } from '../../src/admission/review.js';
import { generateServingCert } from '../../src/tls/certs.js';
import { ANNOTATION, policyFrom } from '../helpers.js';
import { deployConfigYaml, manifest } from '../cluster/deploy.js';
import { startBuild, startSdApi, type SdApi } from '../cluster/screwdriver.js';
import { BUILD_NS, Cluster, errorText, plain, podFrom } from '../cluster/harness.js';
import { injectorConfiguration, startInjector, type Injection } from '../cluster/injector.js';
import { eventually } from '../https.js';

const EXECUTOR_POOL = { key: 'dedicated', value: 'screwdriver' };
const KATA_POOL = { key: 'dedicated', value: 'screwdriver-kata' };

/** The pod without what differs between two creations: the build id, and what the API server sets. */
function comparable(pod: V1Pod) {
  const id = pod.metadata!.labels!.sdbuild!.replace('beta-', '');
  const copy = JSON.parse(JSON.stringify(pod).replaceAll(id, 'N'));
  for (const key of ['name', 'uid', 'resourceVersion', 'creationTimestamp', 'managedFields'])
    delete copy.metadata[key];
  delete copy.status;
  // The memory's seal covers the pod's name, which the executor makes unique: compare what it holds.
  const memory = copy.metadata.annotations?.[ANNOTATION('submitted')];
  if (memory) copy.metadata.annotations[ANNOTATION('submitted')] = JSON.parse(memory).memory;
  return copy;
}

describe("Screwdriver's executor through a real kube-apiserver", { timeout: 20 * 60_000 }, () => {
  let cluster: Cluster;
  let sdApi: SdApi;
  let token: string;
  let buildId = 5000;

  before(async () => {
    cluster = await Cluster.install();
    await cluster.serveAndEnforce();
    const request = await cluster.asAdmin.createNamespacedServiceAccountToken({
      name: 'sd-executor',
      namespace: BUILD_NS,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    token = request.status!.token!;
    // The Screwdriver API the executor reports build status to.
    sdApi = await startSdApi();
  });
  after(async () => {
    sdApi?.server.close();
    await cluster?.stop();
  });

  /** Starts one build with the executor configured by `kubernetes`, and returns the pod the API server stored. */
  async function start(kubernetes: object, container: string, annotations: object = {}): Promise<V1Pod> {
    const id = ++buildId;
    await startBuild({
      sdApi,
      apiServer: new URL(cluster.cp.url).host,
      token,
      namespace: BUILD_NS,
      id,
      container,
      kubernetes,
      annotations,
    });
    const pods = await cluster.asExecutor.listNamespacedPod({
      namespace: BUILD_NS,
      labelSelector: `sdbuild=beta-${id}`,
    });
    assert.equal(pods.items.length, 1);
    return pods.items[0]!;
  }

  const oldPool = { nodeSelectors: { [EXECUTOR_POOL.key]: EXECUTOR_POOL.value } };
  const tolerates = (pod: V1Pod, pool: { key: string; value: string }) =>
    (pod.spec!.tolerations ?? []).some((t) => t.key === pool.key && t.value === pool.value);
  const requiredKeys = (pod: V1Pod) =>
    (
      pod.spec!.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ??
      []
    ).flatMap((t) => (t.matchExpressions ?? []).map((e) => `${e.key}=${(e.values ?? []).join(',')}`));

  it('routes a plain build to kata: runtime class, pool, no executor pool, no token', async () => {
    const pod = await start(oldPool, 'node:20');
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.deepEqual(pod.spec!.nodeSelector, { [KATA_POOL.key]: KATA_POOL.value });
    assert.ok(tolerates(pod, KATA_POOL) && !tolerates(pod, EXECUTOR_POOL));
    assert.deepEqual(requiredKeys(pod), []);
    assert.deepEqual({ ...pod.spec!.overhead }, manifest('RuntimeClass', 'kata').overhead.podFixed);
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.ok(!(pod.spec!.volumes ?? []).some((v) => v.name.startsWith('kube-api-access-')));
    assert.ok(pod.spec!.containers.every((c) => c.securityContext?.privileged !== true));
    assert.ok(
      sdApi.updates.some((u) => u.startsWith('PUT /v4/builds/')),
      'the executor reported to its API',
    );
  });

  it("keeps dind privileged and turns the build container's privileged off (docker-enabled build)", async () => {
    const pod = await start({ ...oldPool, dockerFeatureEnabled: true, privileged: true }, 'golang:1.22', {
      'screwdriver.cd/dockerEnabled': true,
    });
    const byName = Object.fromEntries(pod.spec!.containers.map((c) => [c.name, c]));
    assert.equal(byName['dind']!.securityContext!.privileged, true);
    const build = pod.spec!.containers.find((c) => c.name.startsWith('beta-'))!;
    assert.notEqual(build.securityContext?.privileged, true);
    assert.equal(pod.spec!.runtimeClassName, 'kata');
  });

  it('gives a docker-enabled build sent to legacy (runc) no privileged container: dind would be root on the node', async () => {
    const pod = await start({ ...oldPool, dockerFeatureEnabled: true, privileged: true }, 'centos:6', {
      'screwdriver.cd/dockerEnabled': true,
    });
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.spec!.runtimeClassName, undefined);
    assert.ok(pod.spec!.containers.some((c) => c.name === 'dind'));
    for (const c of pod.spec!.containers) assert.notEqual(c.securityContext?.privileged, true, c.name);
  });

  it("sends an excluded image to legacy on the executor's own pool", async () => {
    const pod = await start(oldPool, 'centos:6');
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'excluded-image');
    assert.equal(pod.spec!.runtimeClassName, undefined);
    assert.ok(tolerates(pod, EXECUTOR_POOL) && !tolerates(pod, KATA_POOL));
    assert.deepEqual(requiredKeys(pod), [`${EXECUTOR_POOL.key}=${EXECUTOR_POOL.value}`]);
  });

  it('takes the kata runtime, its overhead and its pool from an excluded image the executor sent with runtimeClass kata', async () => {
    const pod = await start(
      { nodeSelectors: { [KATA_POOL.key]: KATA_POOL.value }, runtimeClass: 'kata' },
      'registry.example/ci/rhel6-base:1',
    );
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.spec!.runtimeClassName, undefined);
    assert.equal(pod.spec!.overhead, undefined);
    assert.ok(!tolerates(pod, KATA_POOL));
    assert.equal(pod.spec!.nodeSelector?.[KATA_POOL.key], undefined);
  });

  it("turns off the token the executor asks for with automountServiceAccountToken: 'true'", async () => {
    const pod = await start({ ...oldPool, automountServiceAccountToken: 'true' }, 'node:20');
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.ok(!(pod.spec!.volumes ?? []).some((v) => v.name.startsWith('kube-api-access-')));
    assert.ok(
      pod.spec!.containers.every(
        (c) => !(c.volumeMounts ?? []).some((m) => m.mountPath.includes('serviceaccount')),
      ),
    );
  });

  describe('with another mutating webhook', () => {
    let injection: Injection = { label: ['injected', 'yes'] };
    let injector: Awaited<ReturnType<typeof startInjector>>;

    before(async () => {
      const ca = { certPem: cluster.caPem, keyPem: readFileSync(`${cluster.dir}/tls/ca.key`, 'utf8') };
      injector = await startInjector(generateServingCert(ca, ['localhost'], ['127.0.0.1']), () => injection);
    });
    after(() => injector?.server.close());

    /** Registers the injector under `name`, waits until the API server calls it, starts a build, unregisters it. */
    async function startWith(name: string, container: string): Promise<V1Pod> {
      await cluster.apply(injectorConfiguration(name, injector.url, cluster.caPem));
      try {
        await eventually(
          async () => {
            const probe = await cluster
              .createAsExecutor(podFrom('build-plain'), 'All')
              .catch(() => undefined);
            return (
              probe !== undefined &&
              ('initImage' in injection
                ? (probe.spec!.initContainers ?? []).some((c) => c.name === 'injected')
                : 'label' in injection
                  ? probe.metadata!.labels?.[injection.label[0]] === injection.label[1]
                  : true)
            );
          },
          10_000,
          `the ${name} webhook to be called`,
        );
        return await start(oldPool, container);
      } finally {
        await cluster.objects.delete(injectorConfiguration(name, injector.url, cluster.caPem) as never);
      }
    }

    for (const [what, use] of [
      ['adds an init container with an excluded image', { initImage: 'centos:6' }],
      ['adds a label', { label: ['injected', 'yes'] }],
    ] as [string, Injection][]) {
      it(`stores the same pod whether it sorts before or after kata-admission, when it ${what}`, async () => {
        injection = use;
        const before = await startWith('a-injector', 'node:20');
        const later = await startWith('z-injector', 'node:20');
        assert.deepEqual(comparable(later), comparable(before));
        if ('initImage' in use) {
          assert.equal(later.metadata!.annotations![ANNOTATION('route')], 'legacy');
          assert.ok(
            tolerates(later, EXECUTOR_POOL),
            "the executor's pool, which the kata pass took away, is back",
          );
          assert.deepEqual(requiredKeys(later), [`${EXECUTOR_POOL.key}=${EXECUTOR_POOL.value}`]);
        }
      });
    }

    it('cannot be undone by a forged memory, nor by a genuine one replayed from another pod', async () => {
      // A genuine memory: a docker build on legacy, whose dind kata-admission turned unprivileged.
      const legacy = await cluster.createAsExecutor(
        podFrom('build-dind', (p) => {
          p.spec!.containers[0]!.image = 'centos:6';
        }),
      );
      const genuine = legacy.metadata!.annotations![ANNOTATION('submitted')]!;
      assert.deepEqual(JSON.parse(genuine).memory['container/dind'], {
        was: { add: null, privileged: true },
        wrote: { add: null, privileged: false },
      });
      const forged = JSON.stringify({
        mac: 'x',
        memory: {
          'container/dind': {
            was: { privileged: true, add: ['SYS_ADMIN'] },
            wrote: { privileged: false, add: null },
          },
        },
      });
      // Sorted before kata-admission and never called again (the default): it hardens once.
      injection = { harden: true };
      await cluster.apply(injectorConfiguration('a-hardener', injector.url, cluster.caPem, 'Never'));
      try {
        await eventually(
          async () => {
            const probe = await cluster.createAsExecutor(podFrom('build-dind'), 'All').catch(() => undefined);
            return (
              probe?.spec!.containers.every((c) => c.securityContext?.allowPrivilegeEscalation === false) ??
              false
            );
          },
          10_000,
          'the hardening webhook to be called',
        );
        for (const memory of [forged, genuine]) {
          // On kata dind may be privileged: restoring the memory would undo the hardening.
          const pod = await cluster.createAsExecutor(
            podFrom('build-dind', (p) => {
              p.metadata!.annotations = { [ANNOTATION('submitted')]: memory };
            }),
          );
          assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
          for (const c of pod.spec!.containers)
            assert.deepEqual(
              plain(c.securityContext),
              { privileged: false, allowPrivilegeEscalation: false },
              c.name,
            );
        }
      } finally {
        await cluster.objects.delete(
          injectorConfiguration('a-hardener', injector.url, cluster.caPem, 'Never') as never,
        );
      }
    });

    it('is refused, and explained, when it sets a pool nodeSelector after kata-admission routed to kata', async () => {
      injection = { nodeSelector: [EXECUTOR_POOL.key, EXECUTOR_POOL.value] };
      await cluster.apply(injectorConfiguration('z-injector', injector.url, cluster.caPem));
      try {
        await eventually(
          async () =>
            /conflict/i.test(
              await cluster.createAsExecutor(podFrom('build-plain'), 'All').then(
                () => '',
                (e) => errorText(e),
              ),
            ),
          10_000,
          'the API server to refuse the RuntimeClass conflict',
        );
      } finally {
        await cluster.objects.delete(
          injectorConfiguration('z-injector', injector.url, cluster.caPem) as never,
        );
      }
      // What the API server rejected: kata-admission's pod with the other webhook's nodeSelector on top.
      const policy = policyFrom(deployConfigYaml());
      const rejected = podFrom('build-plain', (p) => {
        p.metadata!.annotations = { [ANNOTATION('route')]: 'kata' };
        p.spec!.runtimeClassName = 'kata';
        p.spec!.nodeSelector = { [EXECUTOR_POOL.key]: EXECUTOR_POOL.value };
      });
      rejected.metadata!.namespace = BUILD_NS;
      const outcome = await reviewAdmission(reviewForPod(rejected, policy), { policy });
      assert.ok(outcome.ok);
      assert.match(
        explanation(outcome, rejected, policy),
        /nodeSelector dedicated=screwdriver .*conflicts with RuntimeClass "kata".*docs\/install\.md: Troubleshooting/s,
      );
    });
  });
});
