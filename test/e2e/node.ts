// Builds that run: Screwdriver's real executor starts builds against a real kube-apiserver with
// kata-admission installed from deploy/ (webhook and guard), and a real node runs them. The
// `kata` RuntimeClass's handler on this node is gVisor's runsc, standing in for Kata Containers:
// like Kata's guest kernel it runs only 64-bit ELF, so what these tests see of a routed build
// (the handler, the token, the exit, the message a failure leaves) is what Kata would show.
// Assertions are on what ran: the kernel the build saw and what it wrote, read from the pod status.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { release } from 'node:os';
import { after, before, describe, it } from 'node:test';
import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { parse, stringify } from 'yaml';
import { renderManifests } from '../../src/cluster/manifests.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Webhook } from '../../src/server/webhook.js';
import { parsePrometheus } from '../prometheus.js';
import { eventually } from '../https.js';
import { ANNOTATION, policyFrom } from '../helpers.js';
import { deployConfigYaml, run, type Manifest } from '../cluster/deploy.js';
import { startBuild, startSdApi, type SdApi } from '../cluster/screwdriver.js';
import { BUILD_NS, Cluster } from '../cluster/harness.js';
import { NODE_LABELS, nodeUnsupported } from '../cluster/node.js';
import { watchUntil } from '../cluster/watch.js';
import { LAUNCHER_VERSION, shellLayer, type NodeImages } from '../cluster/node-images.js';
import { gzipLayer, pushLayers } from '../registry/layers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const unsupported = nodeUnsupported();
if (unsupported) console.warn(`\n*** SKIPPING the builds-that-run suite: ${unsupported} ***\n`);

describe('builds that run on a real node', { skip: unsupported, timeout: 15 * 60_000 }, () => {
  let cluster: Cluster;
  let images: NodeImages;
  let sdApi: SdApi;
  let second: Webhook;
  let buildId = 7000;
  let config: string;

  before(async () => {
    cluster = await Cluster.install();
    images = await cluster.startNode();
    // The shipped defaults, with content scanning of the node's registry, and a remedy route for
    // 32-bit images (its RuntimeClass's handler here is runc: a stand-in for an IA32 guest kernel).
    const shipped = parse(deployConfigYaml());
    config = stringify({
      ...shipped,
      imageInspection: {
        ...shipped.imageInspection,
        enabled: true,
        registries: { [cluster.registry!.host]: { insecure: true } },
        classRoutes: { '32-bit': 'kata-ia32' },
        content: { ...shipped.imageInspection.content, enabled: true },
      },
      routes: {
        ...shipped.routes,
        'kata-ia32': { runtimeClassName: 'kata-ia32', nodeSelector: NODE_LABELS },
      },
    });
    const replica = (name: string) => ({
      kubeConfig: cluster.cp.admin,
      scannerName: name,
      leaseNamespace: 'kata-admission',
      ...(process.env.DEBUG_NODE && { logger: createLogger('info') }),
    });
    await cluster.serveAndEnforce(config, replica('replica-a'));
    // A second replica: both run the learning controller, and one Lease lets only one of them act.
    second = await cluster.startReplica(replica('replica-b'));
    const rendered = renderManifests(policyFrom(config), config);
    const guard = rendered['guard.yaml']!.documents.find((d) => d.kind === 'ValidatingAdmissionPolicy')!;
    for (const object of [...rendered['runtimeclass.yaml']!.documents, guard])
      await cluster.apply(object as Manifest);
    sdApi = await startSdApi();
  });
  after(async () => {
    sdApi?.server.close();
    await cluster?.stop();
    // The executor's hostPath volumes: the launcher's copy and each build's temporary folder.
    rmSync(`/opt/screwdriver/sdlauncher/${LAUNCHER_VERSION}`, { recursive: true, force: true });
    for (let id = 7001; id <= buildId; id++)
      rmSync(`/opt/screwdriver/tmp_${id}`, { recursive: true, force: true });
  });

  /** Starts a build of `container` with the real executor; resolves with its pod once it has ended. */
  async function build(container: string, { docker = false } = {}): Promise<V1Pod> {
    const id = ++buildId;
    const token = (
      await cluster.asAdmin.createNamespacedServiceAccountToken({
        name: 'sd-executor',
        namespace: BUILD_NS,
        body: { spec: { audiences: [], expirationSeconds: 3600 } },
      })
    ).status!.token!;
    const ended = buildEnded(`sdbuild=beta-${id}`);
    await startBuild({
      sdApi,
      apiServer: new URL(cluster.cp.url).host,
      token,
      namespace: BUILD_NS,
      id,
      container,
      launcher: { image: images.launcher, version: LAUNCHER_VERSION },
      kubernetes: {
        // The smallest of Screwdriver's tiers, so that a build and its VM overhead fit the node.
        resources: { cpu: { low: 0.5 }, memory: { low: 1 } },
        ...(docker && { dockerFeatureEnabled: true, privileged: true }),
      },
      annotations: docker ? { 'screwdriver.cd/dockerEnabled': true } : {},
    });
    return ended;
  }

  /**
   * The first pod matching `selector` once its build container has terminated, from a watch: the
   * pod has ended then, but for a dind sidecar, which runs until the executor deletes the pod.
   */
  function buildEnded(selector: string, by: 'labelSelector' | 'fieldSelector' = 'labelSelector') {
    return watchUntil<V1Pod>(
      cluster.cp.admin,
      `/api/v1/namespaces/${BUILD_NS}/pods`,
      { [by]: selector },
      (pod) => {
        const ended = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
        const sidecars = pod.spec!.containers.length > 1;
        const build = pod.status?.containerStatuses?.find((c) => c.name.startsWith('beta-'));
        return ended || (sidecars && !!build?.state?.terminated);
      },
      { timeoutMs: 120_000, what: `build ${selector} ended` },
    );
  }

  /** The first Event of `reason` on the pod, from a watch. */
  function eventFor(pod: V1Pod, reason: string) {
    return watchUntil<CoreV1Event>(
      cluster.cp.admin,
      `/api/v1/namespaces/${BUILD_NS}/events`,
      { fieldSelector: `involvedObject.uid=${pod.metadata!.uid}` },
      (event) => event.reason === reason,
      { timeoutMs: 60_000, what: `a ${reason} Event on ${pod.metadata!.name}` },
    );
  }

  /** The pod once it has Succeeded or Failed. */
  const podEnded = (name: string) => buildEnded(`metadata.name=${name}`, 'fieldSelector');

  /** The 32-bit findings a replica recorded, from its metrics. */
  const learned = async (webhook: Webhook) =>
    parsePrometheus(await webhook.metrics.registry.metrics())
      .filter((m) => m.name === 'kata_admission_learned_findings_total' && m.labels.class === '32-bit')
      .reduce((sum, m) => sum + m.value, 0);

  const buildStatus = (pod: V1Pod) => pod.status!.containerStatuses!.find((c) => c.name.startsWith('beta-'))!;
  /** What the stand-in launcher's run.sh wrote: `key: value` lines about where it ran. */
  function report(pod: V1Pod): Record<string, string> {
    const message = buildStatus(pod).state!.terminated!.message ?? '';
    return Object.fromEntries(
      message.split('\n').flatMap((l) => (l.includes(': ') ? [l.split(/: (.*)/s).slice(0, 2)] : [])),
    );
  }

  it('runs a plain build on kata in the sandboxed handler, without a token, to exit 0', async () => {
    const pod = await build(images.shell);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(pod.status!.phase, 'Succeeded', JSON.stringify(pod.status));
    assert.equal(buildStatus(pod).state!.terminated!.exitCode, 0);
    const ran = report(pod);
    assert.match(ran.dmesg!, /Starting gVisor/, 'the kernel log is the sandbox’s');
    assert.notEqual(ran.kernel, release(), 'not the node’s kernel');
    assert.equal(ran.token, 'absent');
    assert.equal(ran.build, 'done');
  });

  it('runs a docker-enabled build on kata: dind privileged inside the sandbox, the build container not', async () => {
    const pod = await build(images.shell, { docker: true });
    try {
      assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
      assert.equal(buildStatus(pod).state!.terminated!.exitCode, 0);
      const ran = report(pod);
      assert.match(ran.dmesg!, /Starting gVisor/);
      assert.equal(
        ran.dind,
        'privileged, in gVisor',
        'the sidecar could mount: privileged, but in the sandbox',
      );
      assert.equal(ran.privileged, 'no', 'the build container lost privileged: true');
      const dind = pod.status!.containerStatuses!.find((c) => c.name === 'dind')!;
      assert.ok(dind.state?.running, 'the docker daemon stand-in runs until the executor deletes the pod');
    } finally {
      // What the executor does once the build reported: the pod goes, and its sidecar with it.
      await cluster.asAdmin.deleteNamespacedPod({
        name: pod.metadata!.name!,
        namespace: BUILD_NS,
        gracePeriodSeconds: 0,
      });
    }
  });

  it('runs an excluded (EL6-named) image on legacy under runc, on the node’s own kernel', async () => {
    const pod = await build(images.el6);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.status!.phase, 'Succeeded', JSON.stringify(pod.status));
    const ran = report(pod);
    assert.equal(ran.kernel, release(), 'runc shares the node’s kernel');
    assert.doesNotMatch(ran.dmesg ?? '', /gVisor/);
    assert.equal(ran.token, 'absent');
  });

  it('routes a genuine i386 image that `scan --write` judged 32-bit to the remedy route from its first build, where it runs', async () => {
    // What an operator does ahead of a build: scan the image and store the verdict in the cluster.
    const file = join(cluster.dir, 'node-config.yaml');
    writeFileSync(file, config);
    const out = run(process.execPath, [
      join(ROOT, 'bin/kata-admission.js'),
      'scan',
      '--config',
      file,
      '--kubeconfig',
      cluster.kubeconfig(),
      '--write',
      '--json',
      images.i386,
    ]);
    const line = JSON.parse(out) as { class: string; digest: string };
    assert.equal(line.class, '32-bit');
    // The webhook the API server calls has the verdict once its informer saw the write.
    const store = cluster.webhook!.content()!.store;
    await eventually(
      () => store.get(line.digest)?.verdict?.class === '32-bit',
      30_000,
      'the verdict in the webhook',
    );
    const pod = await build(images.i386);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata-ia32');
    assert.equal(pod.spec!.runtimeClassName, 'kata-ia32');
    assert.equal(pod.status!.phase, 'Succeeded', JSON.stringify(pod.status));
    assert.equal(report(pod).kernel, release(), 'the remedy route ran it (runc here)');
  });

  // The tool is unpacked at run time, so the image holds no 32-bit ELF and its scan finds nothing.
  let failed: V1Pod;
  it('fails a 32-bit tool a build step runs in the sandbox, and the pod status says why', async () => {
    failed = await build(images.fetchesI386);
    assert.equal(failed.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(failed.status!.phase, 'Failed');
    const terminated = buildStatus(failed).state!.terminated!;
    assert.equal(terminated.exitCode, 126);
    // FallbackToLogsOnError (set by the webhook): the build's last output is in the status.
    assert.match(terminated.message ?? '', /\/tmp\/tool: cannot execute binary file: Exec format error/);
    assert.match(terminated.message ?? '', /kernel: .*gvisor/, 'it failed in the sandbox');
    assert.match(buildStatus(failed).imageID, /@sha256:[0-9a-f]{64}$/);
  });

  it('learns from that failure: a finding on the ImageVerdict of the digest that ran, an Event, a metric, and the next build on the remedy route', async () => {
    const event = await eventFor(failed, 'SandboxIncompatible');
    const digest = /@(sha256:[0-9a-f]{64})$/.exec(buildStatus(failed).imageID)![1]!;
    assert.equal(event.type, 'Warning');
    assert.match(
      event.message!,
      new RegExp(`image ${images.fetchesI386} \\(${digest}\\) failed on route kata`),
    );
    assert.match(event.message!, /its next build goes to kata-ia32/);
    const verdict = (await cluster.objects.read({
      apiVersion: 'kata-admission.io/v1alpha1',
      kind: 'ImageVerdict',
      metadata: { name: digest.replace(':', '-') },
    } as never)) as unknown as {
      status: { findings: { class: string; pod: string; route: string; evidence: string }[] };
    };
    assert.deepEqual(
      verdict.status.findings.map(({ class: cls, pod, route }) => ({ cls, pod, route })),
      [{ cls: '32-bit', pod: `${BUILD_NS}/${failed.metadata!.name}`, route: 'kata' }],
    );
    assert.match(verdict.status.findings[0]!.evidence, /Exec format error/);
    // The failure touched the digest that ran, and no other image's verdict.
    const all = (await cluster.objects.list('kata-admission.io/v1alpha1', 'ImageVerdict'))
      .items as unknown as {
      metadata: { name: string };
      status?: { findings?: unknown[] };
    }[];
    assert.deepEqual(
      all.filter((v) => v.status?.findings?.length).map((v) => v.metadata.name),
      [digest.replace(':', '-')],
    );
    assert.equal((await learned(cluster.webhook!)) + (await learned(second)), 1, 'one replica recorded it');

    const next = await build(images.fetchesI386);
    assert.equal(next.metadata!.annotations![ANNOTATION('route')], 'kata-ia32');
    assert.match(next.metadata!.annotations![ANNOTATION('detail')]!, /learned: build .* failed on kata/);
    assert.equal(
      next.spec!.containers[0]!.image,
      `${images.fetchesI386}@${digest}`,
      'pinned to what was judged',
    );
    assert.equal(next.status!.phase, 'Succeeded', JSON.stringify(next.status));
    assert.equal(report(next).kernel, release(), 'the remedy route ran it (runc here)');
  });

  it('learns nothing from an ordinary failure; a segfault at once is a legacy-glibc finding, and without a remedy route the image stays and is reported', async () => {
    const ordinary = await build(images.fails);
    assert.equal(buildStatus(ordinary).state!.terminated!.exitCode, 1);
    const segfault = await build(images.segfaults);
    assert.equal(segfault.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.equal(buildStatus(segfault).state!.terminated!.exitCode, 139);
    const event = await eventFor(segfault, 'SandboxIncompatible');
    assert.match(event.message!, /as a legacy-glibc image does \(exit 139 after/);
    assert.match(event.message!, /no route more isolated takes legacy-glibc images: an operator decides/);
    // The controller sees pods in the order they changed: the ordinary failure came first.
    const ordinaryEvents = await cluster.asAdmin.listNamespacedEvent({
      namespace: BUILD_NS,
      fieldSelector: `involvedObject.uid=${ordinary.metadata!.uid}`,
    });
    assert.deepEqual(
      ordinaryEvents.items.filter((e) => e.reason === 'SandboxIncompatible'),
      [],
    );
    const next = await build(images.segfaults);
    assert.equal(next.metadata!.annotations![ANNOTATION('route')], 'kata', 'legacy has no sandbox: it stays');
    assert.doesNotMatch(next.metadata!.annotations![ANNOTATION('detail')]!, /learned/);
  });

  it('runs what was judged: a tag moved after admission does not change what the pod runs', async () => {
    const base = `http://${cluster.registry!.host}`;
    const version = (v: string) => [shellLayer(), gzipLayer({ 'build/version': v })];
    const judged = await pushLayers(base, 'ci/moving', 'v1', version('first push'));
    const tag = `${cluster.registry!.host}/ci/moving:v1`;
    // Held back from scheduling, so that the tag can move between admission and the pull.
    const created = await cluster.createAsExecutor({
      metadata: { generateName: 'moving-', labels: { app: 'screwdriver', tier: 'builds' } },
      spec: {
        restartPolicy: 'Never',
        schedulingGates: [{ name: 'kata-admission.test/hold' }],
        containers: [
          {
            name: 'build',
            image: tag,
            command: ['/bin/sh', '-c', 'cat /build/version > /dev/termination-log'],
            resources: { limits: { cpu: '500m', memory: '1Gi' } },
          },
        ],
      },
    });
    assert.equal(created.spec!.containers[0]!.image, `${tag}@${judged}`);
    const moved = await pushLayers(base, 'ci/moving', 'v1', version('second push'));
    assert.notEqual(moved, judged);
    const ended = podEnded(created.metadata!.name!);
    await cluster.asAdmin.patchNamespacedPod({
      name: created.metadata!.name!,
      namespace: BUILD_NS,
      body: [{ op: 'remove', path: '/spec/schedulingGates' }],
    });
    const pod = await ended;
    const status = pod.status!.containerStatuses![0]!;
    assert.equal(status.state!.terminated!.message, 'first push');
    assert.match(status.imageID, new RegExp(`@${judged}$`));
  });
});
