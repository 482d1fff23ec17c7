// End to end through a real kube-apiserver + etcd: deploy/ applied with the real `kubectl apply -k`, as docs/install.md's steps say
// (only the webhook's clientConfig is pointed at the local server, as envtest does), build pods
// created as the executor identity, and the stored pods read back.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig, KubernetesObjectApi, NodeV1Api, type V1Pod } from '@kubernetes/client-node';
import { createLogger } from '../../src/observability/logger.js';
import { registerCaBundle } from '../../src/cluster/selfcheck.js';
import { generateCa } from '../../src/tls/certs.js';
import { startWebhook, type Webhook } from '../../src/server/webhook.js';
import { ANNOTATION, policyFrom } from '../helpers.js';
import { freePort, type ControlPlane } from '../cluster/controlplane.js';
import { composedManifests, deployConfigYaml, deployManifests, type Manifest } from '../cluster/deploy.js';
import { renderManifests } from '../../src/cluster/manifests.js';
import { BUILD_NS, Cluster, errorText, plain, podFrom } from '../cluster/harness.js';
import { eventually, httpsRequest } from '../https.js';
import { serve } from '../serve.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('end to end through a real kube-apiserver', { timeout: 20 * 60_000 }, () => {
  let cluster: Cluster;
  let webhook: Webhook;
  let caPem: string;
  let adminObjects: KubernetesObjectApi;
  let asExecutor: CoreV1Api;
  let asAdmin: CoreV1Api;
  let cp: ControlPlane;
  let dir: string;
  const createAsExecutor = (pod: V1Pod, namespace = BUILD_NS, dryRun?: 'All') =>
    cluster.createAsExecutor(pod, dryRun, namespace);
  const pointWebhookAt = (url: string) => cluster.pointWebhookAt(url);
  const projectConfig = (text: string) => cluster.projectConfig(text);

  before(async () => {
    cluster = await Cluster.install();
    await cluster.serveAndEnforce();
    ({ cp, dir, caPem, asExecutor, asAdmin } = cluster);
    adminObjects = cluster.objects;
    webhook = cluster.webhook!;
  });

  after(async () => {
    await cluster?.stop();
  });

  it('stores an executor pod routed to kata: runtime, pool, privileged, automount, annotations', async () => {
    const created = await createAsExecutor(podFrom('build-dind'));
    const pod = await asExecutor.readNamespacedPod({ name: created.metadata!.name!, namespace: BUILD_NS });
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.deepEqual(pod.spec!.nodeSelector, { dedicated: 'screwdriver-kata' });
    assert.ok(
      pod.spec!.tolerations!.some(
        (t) => t.key === 'dedicated' && t.value === 'screwdriver-kata' && t.effect === 'NoSchedule',
      ),
    );
    assert.ok(
      !pod.spec!.tolerations!.some((t) => t.key === 'dedicated' && t.value === 'screwdriver'),
      'the old pool toleration is gone',
    );
    assert.equal(pod.spec!.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution, undefined);
    const byName = Object.fromEntries(pod.spec!.containers.map((c) => [c.name, c]));
    assert.equal(byName['beta-1002']!.securityContext!.privileged, false);
    assert.equal(byName['dind']!.securityContext!.privileged, true);
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'default');
    assert.equal(pod.metadata!.annotations![ANNOTATION('config')], webhook.policy().hash);
  });

  it('stores an excluded image on legacy without the kata runtime it asked for', async () => {
    const created = await createAsExecutor(podFrom('build-rhel6'));
    const pod = await asExecutor.readNamespacedPod({ name: created.metadata!.name!, namespace: BUILD_NS });
    assert.equal(pod.spec!.runtimeClassName, undefined);
    assert.equal(
      pod.spec!.nodeSelector?.dedicated,
      undefined,
      'no kata pool, even the one the RuntimeClass plugin merged in',
    );
    assert.ok(!(pod.spec!.tolerations ?? []).some((t) => t.value === 'screwdriver-kata'));
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'excluded-image');
  });

  it('leaves pods in other namespaces untouched', async () => {
    const web = podFrom('build-plain');
    const other = await asAdmin.createNamespacedPod({
      namespace: 'team-web',
      body: { ...web, metadata: { ...web.metadata, namespace: 'team-web' } },
    });
    assert.equal(other.spec!.runtimeClassName, undefined);
    assert.equal(other.metadata!.annotations?.[ANNOTATION('route')], undefined);
  });

  it('stores the buildkit build routed to kata with its privileged sidecar', async () => {
    const pod = await createAsExecutor(podFrom('build-buildkit'));
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.equal(pod.spec!.containers.find((c) => c.name === 'buildkitd')!.securityContext!.privileged, true);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
  });

  it('returns the mutated pod for dryRun=All and stores nothing', async () => {
    const pod = podFrom('build-plain');
    const answer = await createAsExecutor(pod, BUILD_NS, 'All');
    assert.equal(answer.spec!.runtimeClassName, 'kata');
    await assert.rejects(
      asExecutor.readNamespacedPod({ name: pod.metadata!.name!, namespace: BUILD_NS }),
      (e) => /404|not found/i.test(errorText(e)),
    );
  });

  it('has its patches accepted with "/" in keys, own affinity and tolerations, and an injected token volume', async () => {
    const created = await createAsExecutor(
      podFrom('build-plain', (p) => {
        // Our keys are added next to existing ones, so their "/" must reach the API server as ~1.
        p.metadata!.annotations = { 'example.com/kept': 'yes' };
        p.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms[0]!.matchExpressions!.push(
          { key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] },
        );
        p.spec!.tolerations!.push({ key: 'ci.example.com/spot', operator: 'Exists', effect: 'NoSchedule' });
        delete p.spec!.automountServiceAccountToken; // the ServiceAccount plugin mounts a token first
      }),
    );
    const pod = await asExecutor.readNamespacedPod({ name: created.metadata!.name!, namespace: BUILD_NS });
    assert.equal(pod.metadata!.annotations!['example.com/kept'], 'yes');
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.deepEqual(
      plain(
        pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms,
      ),
      [{ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] }] }],
    );
    assert.ok(pod.spec!.tolerations!.some((t) => t.key === 'ci.example.com/spot'));
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.ok(
      !(pod.spec!.volumes ?? []).some((v) => v.name.startsWith('kube-api-access-')),
      'no service account token is mounted',
    );
    assert.ok(
      pod.spec!.containers.every(
        (c) => !(c.volumeMounts ?? []).some((m) => m.mountPath.includes('serviceaccount')),
      ),
    );
  });

  it('lets the executor create pods only in the build namespace', async () => {
    await assert.rejects(createAsExecutor(podFrom('build-plain'), 'team-web'), (e) =>
      /forbidden/i.test(errorText(e)),
    );
  });

  it('routes the next pod by a ConfigMap change that reaches the running webhook', async () => {
    const patched = deployConfigYaml().replace('weightage: 100', 'weightage: 0');
    assert.notEqual(patched, deployConfigYaml());
    await asAdmin.patchNamespacedConfigMap({
      name: 'kata-admission-config',
      namespace: 'kata-admission',
      body: [{ op: 'replace', path: '/data/config.yaml', value: patched }],
    });
    const stored = await asAdmin.readNamespacedConfigMap({
      name: 'kata-admission-config',
      namespace: 'kata-admission',
    });
    projectConfig(stored.data!['config.yaml']!); // the kubelet's sync of the mounted ConfigMap
    try {
      await eventually(
        async () =>
          (await createAsExecutor(podFrom('build-plain'), BUILD_NS, 'All')).metadata!.annotations![
            ANNOTATION('route')
          ] === 'legacy',
        10_000,
        'weightage 0',
      );
      const pod = await createAsExecutor(podFrom('build-plain'));
      assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'weightage');
      assert.equal(pod.spec!.runtimeClassName, undefined);
    } finally {
      projectConfig(deployConfigYaml());
      await eventually(() => webhook.policy().config.weightage === 100, 10_000, 'the config restored');
    }
  });

  it('stores a pod routed to each route of the remedy config, with the guard and RuntimeClasses rendered from it', async () => {
    const remedyText = readFileSync(join(ROOT, 'examples', 'remedy.yaml'), 'utf8');
    const remedy = renderManifests(policyFrom(remedyText), remedyText);
    const guard = remedy['guard.yaml']!.documents.find((d) => d.kind === 'ValidatingAdmissionPolicy')!;
    for (const object of [...remedy['runtimeclass.yaml']!.documents, guard])
      await cluster.apply(object as Manifest);
    projectConfig(remedyText);
    try {
      await eventually(
        () => webhook.policy().hash === policyFrom(remedyText).hash,
        10_000,
        'the remedy config',
      );
      const routed: Record<string, V1Pod> = {};
      for (const [route, image] of [
        ['kata', 'node:20'],
        ['kata-vsyscall', 'centos:6'],
        ['kata-ia32', 'i386/debian:12'],
        ['legacy', 'ci/nested-kvm:1'],
      ]) {
        // The regenerated guard reaches the API server's admission chain asynchronously.
        await eventually(
          async () => {
            const pod = await createAsExecutor(
              podFrom('build-plain', (p) => {
                p.spec!.containers[0]!.image = image!;
              }),
            ).catch(() => undefined);
            if (pod) routed[route!] = pod;
            return pod !== undefined;
          },
          10_000,
          `a pod on ${route}`,
        );
      }
      assert.deepEqual(
        Object.fromEntries(
          Object.entries(routed).map(([r, p]) => [r, p.metadata!.annotations![ANNOTATION('route')]]),
        ),
        { kata: 'kata', 'kata-vsyscall': 'kata-vsyscall', 'kata-ia32': 'kata-ia32', legacy: 'legacy' },
      );
      assert.equal(
        routed['kata-vsyscall']!.metadata!.annotations!['io.katacontainers.config.hypervisor.kernel_params'],
        'vsyscall=emulate',
      );
      assert.equal(routed['kata-ia32']!.spec!.runtimeClassName, 'kata-ia32');
      assert.deepEqual(routed['kata-ia32']!.spec!.nodeSelector, { dedicated: 'screwdriver-kata-ia32' });
      assert.deepEqual(
        { ...routed['kata-ia32']!.spec!.overhead },
        { cpu: '250m', memory: '320Mi' },
        "the RuntimeClass plugin set kata-ia32's overhead (kata-deploy's podFixed)",
      );
      assert.equal(routed['legacy']!.spec!.runtimeClassName, undefined);
      assert.deepEqual(routed['legacy']!.spec!.nodeSelector, { dedicated: 'screwdriver' });
    } finally {
      projectConfig(deployConfigYaml());
      await cluster.apply(deployManifests('enforce').find((m) => m.kind === 'ValidatingAdmissionPolicy')!);
      await eventually(
        () => webhook.policy().hash === policyFrom(deployConfigYaml()).hash,
        10_000,
        'the config restored',
      );
    }
  });

  describe('with the webhook down', () => {
    before(async () => pointWebhookAt(`https://127.0.0.1:${await freePort()}/mutate`));
    after(async () => pointWebhookAt(cluster.webhookUrl()));

    it('rejects a build pod (failurePolicy Fail), saying the webhook could not be called', async () => {
      await eventually(
        async () => {
          try {
            await createAsExecutor(podFrom('build-plain'), BUILD_NS, 'All');
            return false;
          } catch (error) {
            return /failed calling webhook/.test(errorText(error));
          }
        },
        10_000,
        'the API server to fail closed',
      );
    });

    it('still creates pods outside the build namespace', async () => {
      const web = podFrom('build-plain');
      await asAdmin.createNamespacedPod({
        namespace: 'team-web',
        body: { ...web, metadata: { ...web.metadata, namespace: 'team-web' } },
        dryRun: 'All',
      });
    });
  });

  /** Cluster access as the webhook's own ServiceAccount, so checks run with exactly its RBAC. */
  async function webhookIdentity(): Promise<KubeConfig> {
    const token = await asAdmin.createNamespacedServiceAccountToken({
      name: 'kata-admission',
      namespace: 'kata-admission',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const asWebhook = new KubeConfig();
    const cluster = cp.admin.getCurrentCluster()!;
    asWebhook.loadFromOptions({
      clusters: [{ name: 'test', server: cluster.server, caData: cluster.caData! }],
      users: [{ name: 'kata-admission', token: token.status!.token }],
      contexts: [{ name: 'c', cluster: 'test', user: 'kata-admission' }],
      currentContext: 'c',
    });
    return asWebhook;
  }

  it('self-checks RuntimeClasses with the base RBAC, which cannot touch the webhook configuration', async () => {
    const asWebhook = await webhookIdentity();
    const conflicting = join(dir, 'conflicting.yaml');
    writeFileSync(
      conflicting,
      'routes: {kata: {nodeSelector: {dedicated: other-pool}}, legacy: {runtimeClassName: gvisor}}\n',
    );
    const second = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      configPath: conflicting,
      tlsCert: join(dir, 'tls', 'tls.crt'),
      tlsKey: join(dir, 'tls', 'tls.key'),
      devCertsDir: join(dir, 'tls'),
      logger: createLogger('silent'),
      kubeConfig: asWebhook,
    });
    try {
      const problems = await second.selfCheck();
      assert.deepEqual(problems.sort(), [
        'RuntimeClass "gvisor" of route legacy does not exist',
        'RuntimeClass "kata" schedules onto dedicated=screwdriver-kata but route kata selects dedicated=other-pool',
      ]);
      const readyz = await httpsRequest(second.port, caPem, { path: '/readyz', method: 'GET' });
      assert.equal(readyz.status, 503);
      assert.equal(readyz.json.problems.length, 2);
      assert.deepEqual(await webhook.selfCheck(), []);

      await assert.rejects(
        registerCaBundle(asWebhook, 'kata-admission', caPem),
        (e) =>
          /forbidden/i.test(errorText(e)) &&
          /add the component deploy\/components\/register/.test(errorText(e)),
      );
    } finally {
      await second.shutdown();
    }
  });

  it("with cluster access, a re-routed pod gets its RuntimeClass's overhead at once: one call per pod, no reinvocation", async () => {
    const config = join(dir, 'deploy-config.yaml');
    writeFileSync(config, deployConfigYaml());
    const second = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      configPath: config,
      tlsCert: join(dir, 'tls', 'tls.crt'),
      tlsKey: join(dir, 'tls', 'tls.key'),
      devCertsDir: join(dir, 'tls'),
      logger: createLogger('silent'),
      kubeConfig: await webhookIdentity(),
    });
    const calls = async () => {
      const counted = await second.metrics.admissions.get();
      return Object.fromEntries(counted.values.map((v) => [v.labels.result, v.value]));
    };
    try {
      assert.deepEqual(await second.selfCheck(), []);
      await pointWebhookAt(`https://127.0.0.1:${second.port}/mutate`);
      await eventually(
        async () => {
          await createAsExecutor(podFrom('build-plain'), BUILD_NS, 'All').catch(() => undefined);
          return ((await calls()).mutated ?? 0) > 0;
        },
        30_000,
        'the API server to call the second webhook',
      );
      const before = await calls();
      const created = await createAsExecutor(podFrom('build-dind'));
      const after = await calls();
      assert.deepEqual(
        Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)])),
        { mutated: 1, ...(after.unchanged !== undefined && { unchanged: 0 }) },
        'one call: the RuntimeClass plugin after the webhook found the overhead already right',
      );
      const pod = await asAdmin.readNamespacedPod({ name: created.metadata!.name!, namespace: BUILD_NS });
      const runtimeClass = await cp.admin.makeApiClient(NodeV1Api).readRuntimeClass({ name: 'kata' });
      assert.deepEqual(pod.spec!.overhead, runtimeClass.overhead!.podFixed);
    } finally {
      await pointWebhookAt(cluster.webhookUrl());
      await second.shutdown();
    }
  });

  it("`serve --kubeconfig --register` patches its caBundle at startup, with the register component's RBAC", async () => {
    for (const object of composedManifests(['overlays/enforce'], ['components/register'])) {
      if (object.metadata.name === 'kata-admission-register') await cluster.apply(object);
    }
    const kubeconfig = join(dir, 'webhook.kubeconfig');
    writeFileSync(kubeconfig, (await webhookIdentity()).exportConfig());
    const ca = generateCa('registered by serve');
    writeFileSync(join(dir, 'register-ca.crt'), ca.certPem);
    const served = serve([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--tls-cert',
      join(dir, 'tls', 'tls.crt'),
      '--tls-key',
      join(dir, 'tls', 'tls.key'),
      '--tls-ca',
      join(dir, 'register-ca.crt'),
      '--kubeconfig',
      kubeconfig,
      '--register',
    ]);
    const { child } = served;
    try {
      await served.logged('registered the caBundle');
      const registered = (await adminObjects.read({
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'kata-admission' },
      })) as Manifest;
      assert.equal(
        Buffer.from(registered.webhooks[0].clientConfig.caBundle, 'base64').toString(),
        ca.certPem,
      );
    } finally {
      child.kill('SIGTERM');
      await pointWebhookAt(`https://127.0.0.1:${webhook.port}/mutate`); // the local server's CA again
    }
  });
});
