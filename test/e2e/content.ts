// Content verdicts in a real cluster: ImageVerdict objects on a real kube-apiserver, shared by two
// webhook replicas (one scan per digest, identical routes), an operator's override, verdicts written
// ahead by `scan --write`, read by `explain --kubeconfig`, and garbage collection.
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuthorizationV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { run } from '../../src/cli/main.js';
import { ClusterVerdictStore, VERDICT_API, verdictName } from '../../src/images/content/cluster-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { startWebhook, type Webhook } from '../../src/server/webhook.js';
import { ANNOTATION, capturedIo, fixture, podFromResponse, withPod } from '../helpers.js';
import { eventually, httpsRequest } from '../https.js';
import { BUILD_NS, Cluster, podFrom } from '../cluster/harness.js';
import { parsePrometheus } from '../prometheus.js';
import { elfBinaries, gzipLayer, pushLayers } from '../registry/layers.js';
import { startRegistry, type Registry } from '../registry/registry.js';
import { manifestOf, serveImage, startHostile, tarEntries, type Hostile } from '../registry/hostile.js';
import { gzipSync } from 'node:zlib';

describe('content verdicts on a real API server', () => {
  let cluster: Cluster;
  let registry: Registry;
  let hostile: Hostile;
  let api: CustomObjectsApi;
  const replicas: Webhook[] = [];
  const digests: Record<string, string> = {};
  let configFile: string;
  let kubeconfigFile: string;
  const image = (name: string) => `${registry.host}/ci/${name}:v1`;

  const startReplica = () =>
    startWebhook({
      port: 0,
      host: '127.0.0.1',
      configPath: configFile,
      tlsCert: join(cluster.dir, 'tls', 'tls.crt'),
      tlsKey: join(cluster.dir, 'tls', 'tls.key'),
      devCertsDir: join(cluster.dir, 'tls'),
      logger: createLogger('silent'),
      kubeConfig: cluster.cp.admin,
      scannerName: `replica-${replicas.length}`,
    }).then((w) => (replicas.push(w), w));

  const scans = async (webhook: Webhook) =>
    parsePrometheus(await webhook.metrics.registry.metrics())
      .filter((s) => s.name === 'kata_admission_content_scans_total')
      .reduce((sum, s) => sum + s.value, 0);

  const verdictObject = (digest: string) =>
    api.getClusterCustomObject({ ...VERDICT_API, name: verdictName(digest) }) as Promise<any>;

  /** What one replica answers for a build of this image, as the pod the API server would store. */
  async function routeFrom(webhook: Webhook, name: string) {
    const review = withPod(fixture('build-plain'), (pod) => {
      pod.spec!.containers[0]!.image = image(name);
    });
    const res = await httpsRequest(webhook.port, cluster.caPem, { body: JSON.stringify(review) });
    const pod = podFromResponse(review.request.object, JSON.parse(res.body));
    return pod.metadata!.annotations![ANNOTATION('route')];
  }

  before(async () => {
    cluster = await Cluster.install();
    api = cluster.cp.admin.makeApiClient(CustomObjectsApi);
    registry = await startRegistry(join(cluster.dir, 'registry'));
    hostile = await startHostile(); // a registry a submitter runs, which the operator named too
    const base = `http://${registry.host}`;
    const { i386, amd64 } = elfBinaries();
    digests.sdk = await pushLayers(base, 'ci/sdk', 'v1', [
      gzipLayer({ 'usr/bin/make': amd64, 'opt/android/aapt': i386 }),
    ]);
    digests.clean = await pushLayers(base, 'ci/clean', 'v1', [gzipLayer({ 'usr/bin/make': amd64 })]);
    digests.app = await pushLayers(base, 'ci/app', 'v1', [
      gzipLayer({ 'etc/redhat-release': 'CentOS release 6.10 (Final)\n', 'bin/sh': amd64 }),
    ]);
    configFile = join(cluster.dir, 'content.yaml');
    writeFileSync(
      configFile,
      `imageInspection: ${JSON.stringify({
        enabled: true,
        registries: { [registry.host]: { insecure: true }, [hostile.host]: { insecure: true } },
        content: { enabled: true },
      })}\n`,
    );
    kubeconfigFile = join(cluster.dir, 'admin.kubeconfig');
    writeFileSync(kubeconfigFile, cluster.cp.admin.exportConfig());
    // The CRD comes with deploy/: wait until the API server serves it.
    await eventually(
      () =>
        api.listClusterCustomObject(VERDICT_API).then(
          () => true,
          () => false,
        ),
      30_000,
      'the ImageVerdict CRD to be served',
    );
    await startReplica();
    await startReplica();
    cluster.webhook = replicas[0];
    await cluster.applyDeploy('enforce', cluster.webhookUrl());
    await eventually(
      () =>
        cluster.createAsExecutor(podFrom('build-plain'), 'All').then(
          () => true,
          () => false,
        ),
      30_000,
      'the API server to call the webhook',
    );
  });

  after(async () => {
    for (const webhook of replicas) await webhook.shutdown();
    cluster.webhook = undefined;
    await registry?.stop();
    await hostile?.close();
    await cluster?.stop();
  });

  it('two replicas scan a digest once and then route identically; the API server stores the content route', async () => {
    const [a, b] = replicas as [Webhook, Webhook];
    // First admissions, on both replicas at once: the config decides (kata); both queue a scan.
    assert.deepEqual(await Promise.all([routeFrom(a, 'sdk'), routeFrom(b, 'sdk')]), ['kata', 'kata']);
    await eventually(
      () => [a, b].every((w) => w.content()!.store.get(digests.sdk!)?.phase === 'Scanned'),
      30_000,
      'both replicas to see the verdict',
    );
    await Promise.all([a.content()!.idle(), b.content()!.idle()]);
    assert.equal((await scans(a)) + (await scans(b)), 1, 'one scan between the two replicas');
    assert.deepEqual(await Promise.all([routeFrom(a, 'sdk'), routeFrom(b, 'sdk')]), ['legacy', 'legacy']);
    const stored = await cluster.createAsExecutor(
      podFrom('build-plain', (pod) => {
        pod.spec!.containers[0]!.image = image('sdk');
      }),
    );
    assert.equal(stored.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.match(
      stored.metadata!.annotations![ANNOTATION('detail')]!,
      /content: \/opt\/android\/aapt 32-bit ELF file/,
    );
    // What runs is what was judged: the tag is pinned to the scanned digest, and kept for people.
    assert.equal(stored.spec!.containers[0]!.image, `${image('sdk')}@${digests.sdk}`);
    const object = await verdictObject(digests.sdk!);
    assert.equal(object.status.class, '32-bit');
    assert.deepEqual(object.status.evidence, ['/opt/android/aapt']);
    assert.equal(object.spec.image, `${registry.host}/ci/sdk@${digests.sdk}`);
  });

  it('a build submitter can neither write ImageVerdicts nor forge an override; the webhook may keep them', async () => {
    const a = replicas[0]!;
    assert.equal(await routeFrom(a, 'clean'), 'kata'); // queues the scan
    await eventually(
      () => a.content()!.store.get(digests.clean!)?.phase === 'Scanned',
      30_000,
      'the clean scan',
    );
    // The submitter's identity, against the real API server's RBAC.
    const asExecutor = cluster.cp.executor.makeApiClient(CustomObjectsApi);
    const override = [{ op: 'add', path: '/spec/override', value: { route: 'legacy', reason: 'mine' } }];
    await assert.rejects(
      asExecutor.patchClusterCustomObject({
        ...VERDICT_API,
        name: verdictName(digests.clean!),
        body: override,
      }),
      (e: { code?: number }) => e.code === 403,
    );
    await assert.rejects(
      asExecutor.createClusterCustomObject({
        ...VERDICT_API,
        body: {
          apiVersion: 'kata-admission.io/v1alpha1',
          kind: 'ImageVerdict',
          metadata: { name: 'sha256-' + 'f'.repeat(64) },
          spec: { digest: `sha256:${'f'.repeat(64)}`, override: { route: 'legacy' } },
        },
      }),
      (e: { code?: number }) => e.code === 403,
    );
    // Annotations claiming an override (or any route) are the submitter's words, not the verdict's.
    const stored = await cluster.createAsExecutor(
      podFrom('build-plain', (pod) => {
        pod.spec!.containers[0]!.image = image('clean');
        pod.spec!.runtimeClassName = undefined as never;
        pod.metadata!.annotations = {
          ...pod.metadata!.annotations,
          [ANNOTATION('route')]: 'legacy',
          [ANNOTATION('reason')]: 'image-override',
          [ANNOTATION('detail')]: 'ImageVerdict override to legacy',
        };
      }),
    );
    assert.equal(stored.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.notEqual(stored.metadata!.annotations![ANNOTATION('reason')], 'image-override');
    assert.equal(stored.spec!.runtimeClassName, 'kata');
    // deploy/rbac.yaml gives the webhook's ServiceAccount what its ImageVerdict store does, no more.
    const authz = cluster.cp.admin.makeApiClient(AuthorizationV1Api);
    const may = async (verb: string, resource: string, group: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user: 'system:serviceaccount:kata-admission:kata-admission',
              resourceAttributes: { verb, resource, group },
            },
          },
        })
      ).status!.allowed;
    for (const verb of ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'])
      assert.equal(await may(verb, 'imageverdicts', 'kata-admission.io'), true, verb);
    assert.equal(await may('create', 'pods', ''), false);
    assert.equal(await may('update', 'pods', ''), false);
    assert.equal(await may('watch', 'pods', ''), true, 'learning watches routed builds');
    // Leave the cluster's verdicts as the later tests expect them.
    await api.deleteClusterCustomObject({ ...VERDICT_API, name: verdictName(digests.clean!) });
    await eventually(
      () => replicas.every((w) => w.content()!.store.get(digests.clean!) === undefined),
      30_000,
      'every replica to drop the clean verdict',
    );
  });

  it('a replica started later reads the verdicts and scans nothing', async () => {
    const late = await startReplica();
    await eventually(
      () => late.content()?.store.get(digests.sdk!) !== undefined,
      30_000,
      'the informer to list',
    );
    assert.equal(await routeFrom(late, 'sdk'), 'legacy');
    assert.equal(await scans(late), 0);
  });

  it('a config reload with new content settings keeps the replicas watching their verdicts', async () => {
    const hashes = replicas.map((w) => w.policy().hash);
    const next = join(cluster.dir, 'content.next.yaml');
    writeFileSync(
      next,
      readFileSync(configFile, 'utf8').replace(
        '"content":{"enabled":true}',
        '"content":{"enabled":true,"workers":3}',
      ),
    );
    renameSync(next, configFile);
    await eventually(
      () => replicas.every((w, i) => w.policy().hash !== hashes[i]),
      30_000,
      'every replica to reload',
    );
    for (const webhook of replicas) assert.equal(webhook.policy().config.imageInspection.content.workers, 3);
  });

  it("an operator's override in the ImageVerdict wins on every replica", async () => {
    await api.patchClusterCustomObject({
      ...VERDICT_API,
      name: verdictName(digests.sdk!),
      body: [{ op: 'add', path: '/spec/override', value: { route: 'kata', reason: 'aapt is never run' } }],
    });
    await eventually(
      () => replicas.every((w) => w.content()!.store.get(digests.sdk!)?.override?.route === 'kata'),
      30_000,
      'the override to reach every replica',
    );
    for (const webhook of replicas) assert.equal(await routeFrom(webhook, 'sdk'), 'kata');
    const stored = await cluster.createAsExecutor(
      podFrom('build-plain', (pod) => {
        pod.spec!.containers[0]!.image = image('sdk');
      }),
    );
    assert.equal(stored.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.match(
      stored.metadata!.annotations![ANNOTATION('detail')]!,
      /ImageVerdict override to kata \(aapt is never run\)/,
    );
    assert.equal(stored.spec!.runtimeClassName, 'kata');
  });

  it('scan --write prepares a verdict before the first build; explain --kubeconfig shows it', async () => {
    const { io, out, err } = capturedIo();
    const code = await run(
      ['scan', image('app'), '--config', configFile, '--kubeconfig', kubeconfigFile, '--write'],
      io,
    );
    assert.equal(code, 0, err.join(''));
    assert.match(
      err.join(''),
      new RegExp(`wrote ImageVerdict ${verdictName(digests.app!)} \\(legacy-glibc, scanned\\)`),
    );
    const object = await verdictObject(digests.app!);
    assert.equal(object.status.class, 'legacy-glibc');
    assert.equal(object.status.os, 'centos 6.10');
    await eventually(
      () => replicas.every((w) => w.content()!.store.get(digests.app!)?.phase === 'Scanned'),
      30_000,
      'the verdict to reach every replica',
    );
    // The very first admission of this image already routes by content.
    for (const webhook of replicas) assert.equal(await routeFrom(webhook, 'app'), 'legacy');
    const podFile = join(cluster.dir, 'app-pod.json');
    writeFileSync(
      podFile,
      JSON.stringify({
        ...podFrom('build-plain', (pod) => void (pod.spec!.containers[0]!.image = image('app'))),
        metadata: { name: 'app', namespace: BUILD_NS },
      }),
    );
    out.length = 0;
    assert.equal(
      await run(['explain', podFile, '--config', configFile, '--kubeconfig', kubeconfigFile], io),
      0,
      err.join(''),
    );
    assert.match(
      out.join(''),
      /legacy-glibc.*content: CentOS release 6\.10 \(Final\) \(\/etc\/redhat-release\)/,
    );
    assert.ok(readFileSync(kubeconfigFile).length > 0);
  });

  it('scan --write keeps and shows what failed builds of the image taught', async () => {
    const digest = await pushLayers(`http://${registry.host}`, 'ci/learned', 'v1', [
      gzipLayer({ 'usr/bin/tool': elfBinaries().amd64 }),
    ]);
    // What the learning controller writes when a build of this digest failed in the sandbox.
    await replicas[0]!.content()!.store.learn(digest, `${registry.host}/ci/learned@${digest}`, {
      class: '32-bit',
      pod: `${BUILD_NS}/beta-1`,
      container: 'beta-1',
      route: 'kata',
      evidence: 'exit 8 after 1 s, no message',
      at: Date.now(),
    });
    const { io, out, err } = capturedIo();
    const args = [
      'scan',
      image('learned'),
      '--config',
      configFile,
      '--kubeconfig',
      kubeconfigFile,
      '--write',
    ];
    assert.equal(await run(args, io), 0, err.join(''));
    assert.match(
      out.join(''),
      /finding: {2}32-bit: build sd-build-namespace\/beta-1 failed on kata \(exit 8/,
    );
    // No remedy route in this config: the image stays on kata, as admissions route it.
    assert.match(out.join(''), /route: {4}kata/);
    const object = await verdictObject(digest);
    assert.equal(object.status.class, 'ok');
    assert.equal(object.status.findings.length, 1, "the scan's result kept the finding");
    // Leave the cluster's verdicts as the later tests expect them.
    await api.deleteClusterCustomObject({ ...VERDICT_API, name: verdictName(digest) });
    await eventually(
      () => replicas.every((w) => w.content()!.store.get(digest) === undefined),
      30_000,
      'every replica to drop the learned verdict',
    );
  });

  it('a verdict admissions use is kept; one no admission used for forgetAfterSeconds is deleted', async () => {
    const a = replicas[0]!;
    const store = a.content()!.store as ClusterVerdictStore;
    const day = 86_400_000;
    await store.flush(); // what earlier tests admitted is stored (nothing yet: all recent)
    await routeFrom(a, 'sdk'); // used from now on; app is not
    await store.flush(Date.now() + 4 * day); // lastAdmitted is stored lazily, not per admission
    assert.ok(Date.parse((await verdictObject(digests.sdk!)).status.lastAdmitted) > Date.now() + 3 * day);
    assert.equal(await store.collect(Date.now() + 31 * day), 1);
    const left = (await api.listClusterCustomObject(VERDICT_API)) as {
      items: { spec: { digest: string } }[];
    };
    assert.deepEqual(
      left.items.map((i) => i.spec.digest),
      [digests.sdk],
    );
    await eventually(
      () => replicas.every((w) => w.content()!.store.size() === 1),
      30_000,
      'every replica to forget',
    );
  });

  it("keeps another team's builds on kata when a registry serves 32-bit bytes under their digests", async () => {
    const { i386, amd64 } = elfBinaries();
    const layer = gzipLayer({ 'usr/bin/tool': amd64 });
    const victim = await pushLayers(`http://${registry.host}`, 'team/victim', 'v1', [layer]);
    const manifest = Buffer.from(
      await (
        await fetch(`http://${registry.host}/v2/team/victim/manifests/${victim}`, {
          headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
        })
      ).arrayBuffer(),
    );
    const evil = gzipSync(await tarEntries([{ name: 'usr/bin/tool', data: i386.subarray(0, 64) }]));
    // A 32-bit image served under the victim's manifest digest, and the victim's own manifest with
    // 32-bit bytes for its layer.
    serveImage(
      hostile,
      'x/poison',
      { ...manifestOf([{ data: evil, mediaType: layer.mediaType }]), layers: [evil] },
      {
        manifestDigest: victim,
      },
    );
    hostile.route(`/v2/x/copy/manifests/${victim}`, (_req, res) => res.end(manifest));
    hostile.route(`/v2/x/copy/blobs/${JSON.parse(manifest.toString()).layers[0].digest}`, (_req, res) =>
      res.end(evil),
    );
    for (const attack of ['x/poison', 'x/copy']) {
      await cluster.createAsExecutor(
        podFrom('build-plain', (p) => {
          p.spec!.containers[0]!.image = `${hostile.host}/${attack}@${victim}`;
        }),
      );
      await replicas[0]!.content()!.idle();
    }
    const planted = await verdictObject(victim);
    assert.notEqual(planted.status.class, '32-bit');
    assert.equal(planted.status.phase, 'Failed');
    assert.match(planted.status.detail, /hash to|more than the/);
    const stored = await cluster.createAsExecutor(
      podFrom('build-plain', (p) => {
        p.spec!.containers[0]!.image = `${registry.host}/team/victim@${victim}`;
      }),
    );
    assert.equal(stored.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(stored.spec!.runtimeClassName, 'kata');
  });

  it("never collects an operator's override, even one without a scan; failed verdicts go after hours", async () => {
    const store = replicas[0]!.content()!.store as ClusterVerdictStore;
    const digest = `sha256:${'e'.repeat(64)}`;
    await api.createClusterCustomObject({
      ...VERDICT_API,
      body: {
        apiVersion: `${VERDICT_API.group}/${VERDICT_API.version}`,
        kind: 'ImageVerdict',
        metadata: { name: verdictName(digest) },
        spec: { digest, override: { route: 'legacy', reason: 'operator' } },
      },
    });
    await eventually(
      () => store.get(digest)?.override?.route === 'legacy',
      30_000,
      'the override to be seen',
    );
    const failed = (await api.listClusterCustomObject(VERDICT_API)) as { items: any[] };
    const failures = failed.items.filter((i) => i.status?.phase === 'Failed' && !i.spec.override).length;
    assert.ok(failures > 0, 'the attacks above left failed verdicts');
    const hours = 7 * 3_600_000;
    await store.flush(); // the victim's admission used its failed verdict: that use is stored now
    assert.equal(await store.collect(Date.now() + hours), failures);
    assert.equal((await verdictObject(digest)).spec.override.route, 'legacy');
    await store.collect(Date.now() + 365 * 86_400_000);
    assert.equal((await verdictObject(digest)).spec.override.route, 'legacy', 'kept a year on');
    await api.deleteClusterCustomObject({ ...VERDICT_API, name: verdictName(digest) });
  });
});
