// Pod-create latency through a real kube-apiserver: no webhook (baseline), a bare one-label
// webhook, a bare server replaying our webhook's answer (what the API server does with our patch),
// and the shipped webhook with the guard, each in a namespace of its own so no configuration
// changes between rounds; rounds alternate, so all four meet the same noise.
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';
import { freePort } from '../test/cluster/controlplane.js';
import { deployConfigYaml, deploymentNodeArgs } from '../test/cluster/deploy.js';
import { BUILD_NS, Cluster } from '../test/cluster/harness.js';
import { eventually, httpsRequest } from '../test/https.js';
import { serving } from './process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODES = ['no webhook', 'one-label webhook', 'our patch, replayed', 'kata-admission + guard'] as const;
type Mode = (typeof MODES)[number];
const NAMESPACE: Record<Mode, string> = {
  'no webhook': 'bench-none',
  'one-label webhook': 'bench-one-label',
  'our patch, replayed': 'bench-replay',
  'kata-admission + guard': BUILD_NS,
};

export interface ApiServerBench {
  pods: number;
  modes: {
    mode: Mode;
    p50Ms: number;
    p99Ms: number;
    /** A webhook's: the median over rounds of its added p50 latency over no webhook... */
    addedMs?: number;
    /** ...and of that divided by the one-label webhook's. */
    vsOneLabel?: number;
  }[];
  /** The webhook's RSS with cluster access (self-check on), after the runs. */
  webhookRssBytes: number;
  /** The webhook's own mean time per measured admission (its histogram), body received to answer ready. */
  webhookMeanMs: number;
}

const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * q))]!;
const median = (values: number[]) => quantile(values, 0.5);
/** The webhook's RSS, and its duration histogram's sum and count over the admissions it routed. */
async function webhookMetrics(port: number, ca: string) {
  const text = (await httpsRequest(port, ca, { path: '/metrics', method: 'GET' })).body;
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)![1]);
  return {
    rssBytes: value('kata_admission_process_resident_memory_bytes'),
    seconds: value('kata_admission_duration_seconds_sum\\{result="mutated"\\}'),
    admissions: value('kata_admission_duration_seconds_count\\{result="mutated"\\}'),
  };
}

function benchPod(): V1Pod {
  const review = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/build-dind.json'), 'utf8'));
  const pod = review.request.object as V1Pod;
  const { name: _name, namespace: _namespace, ...metadata } = pod.metadata!;
  return { ...pod, metadata: { ...metadata, generateName: 'bench-' } };
}

/** A bare server registered as the mutating webhook of `namespace` only. */
async function bareWebhook(cluster: Cluster, name: string, port: number, namespace: string): Promise<void> {
  await cluster.apply({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: `${name}.bench.local`,
        clientConfig: {
          url: `https://127.0.0.1:${port}/mutate`,
          caBundle: Buffer.from(cluster.caPem).toString('base64'),
        },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
        failurePolicy: 'Fail',
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        timeoutSeconds: 10,
      },
    ],
  });
}

/** Every namespace answers as its mode does: the label each webhook adds is there. */
async function modesInForce(cluster: Cluster, pod: V1Pod): Promise<void> {
  const label: Record<Mode, string | undefined> = {
    'no webhook': undefined,
    'one-label webhook': 'bench-one-label',
    'our patch, replayed': 'kata-admission.screwdriver.cd/route',
    'kata-admission + guard': 'kata-admission.screwdriver.cd/route',
  };
  for (const mode of MODES) {
    await eventually(
      async () => {
        const made = await cluster.asAdmin
          .createNamespacedPod({ namespace: NAMESPACE[mode], body: pod, dryRun: 'All' })
          .catch(() => undefined);
        const expected = label[mode];
        return (
          made !== undefined && (expected === undefined || made.metadata?.labels?.[expected] !== undefined)
        );
      },
      30_000,
      `the API server to call the webhook of "${mode}"`,
    );
  }
}

async function createLatencies(cluster: Cluster, namespace: string, pod: V1Pod, count: number) {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await cluster.asAdmin.createNamespacedPod({ namespace, body: pod });
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times;
}

/** The namespaces of the modes, and both webhooks serving, registered and in force; returns our port. */
async function setUp(cluster: Cluster, children: ChildProcess[]): Promise<number> {
  const tls = join(cluster.dir, 'tls');
  const [ours, oneLabel, replay] = [await freePort(), await freePort(), await freePort()];
  const config = join(cluster.dir, 'bench-config.yaml');
  writeFileSync(config, deployConfigYaml());
  for (const ns of [
    NAMESPACE['no webhook'],
    NAMESPACE['one-label webhook'],
    NAMESPACE['our patch, replayed'],
  ]) {
    await cluster.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    // No kube-controller-manager runs here to make the default ServiceAccount pods need.
    await cluster.apply({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'default', namespace: ns },
    });
  }
  const certs = [join(tls, 'tls.crt'), join(tls, 'tls.key')];
  // The shipped webhook as the Deployment runs it: its own process, production log level, cluster access.
  const serve = ['dist/main.js', 'serve', '--config', config, '--port', String(ours), '--host', '127.0.0.1'];
  const flags = ['--tls-cert', certs[0]!, '--tls-key', certs[1]!, '--kubeconfig', cluster.kubeconfig()];
  children.push(await serving([...deploymentNodeArgs(), ...serve, ...flags], ours, cluster.caPem));
  const bare = (port: number, ...mode: string[]) =>
    serving(['bench/bare-server.mjs', String(port), ...certs, ...mode], port, cluster.caPem);
  children.push(
    await bare(oneLabel, 'one-label'),
    await bare(replay, 'replay', String(ours), BUILD_NS, join(tls, 'ca.crt')),
  );
  await cluster.applyDeploy('enforce', `https://127.0.0.1:${ours}/mutate`);
  await bareWebhook(cluster, 'bench-one-label', oneLabel, NAMESPACE['one-label webhook']);
  await bareWebhook(cluster, 'bench-replay', replay, NAMESPACE['our patch, replayed']);
  await modesInForce(cluster, benchPod());
  return ours;
}

/** Each mode's latencies, round by round: rounds alternate, so all modes meet the same noise. */
async function measure(cluster: Cluster, pod: V1Pod, podsPerRound: number, rounds: number) {
  const perRound: Record<Mode, number[][]> = {
    'no webhook': [],
    'one-label webhook': [],
    'our patch, replayed': [],
    'kata-admission + guard': [],
  };
  for (let r = 0; r < rounds; r++)
    for (const mode of MODES)
      perRound[mode].push(await createLatencies(cluster, NAMESPACE[mode], pod, podsPerRound));
  return perRound;
}

export async function benchApiServer(podsPerRound = 100, rounds = 5): Promise<ApiServerBench> {
  const cluster = await Cluster.install();
  const children: ChildProcess[] = [];
  try {
    const ours = await setUp(cluster, children);
    const pod = benchPod();
    for (const mode of MODES) await createLatencies(cluster, NAMESPACE[mode], pod, 20); // warm up
    const before = await webhookMetrics(ours, cluster.caPem);
    const perRound = await measure(cluster, pod, podsPerRound, rounds);
    const after = await webhookMetrics(ours, cluster.caPem);
    const added = (mode: Mode, r: number) => median(perRound[mode][r]!) - median(perRound['no webhook'][r]!);
    const eachRound = (f: (r: number) => number) => median([...Array(rounds).keys()].map(f));
    return {
      pods: podsPerRound * rounds,
      modes: MODES.map((mode) => ({
        mode,
        p50Ms: median(perRound[mode].flat()),
        p99Ms: quantile(perRound[mode].flat(), 0.99),
        ...(mode !== 'no webhook' && {
          addedMs: eachRound((r) => added(mode, r)),
          vsOneLabel: eachRound((r) => added(mode, r) / added('one-label webhook', r)),
        }),
      })),
      webhookRssBytes: after.rssBytes,
      webhookMeanMs: ((after.seconds - before.seconds) / (after.admissions - before.admissions)) * 1000,
    };
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await cluster.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await benchApiServer());
