// Content scanning: a layer's scan against `gzip -dc | tar -t` of the same layer, the memory a scan
// holds, what a stored verdict adds to an admission, and the informer's memory per 10,000 verdicts.
import { spawnSync } from 'node:child_process';
import { createReadStream, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { parseConfig } from '../src/policy/load.js';
import { ClusterVerdictStore, VERDICT_API } from '../src/images/content/cluster-store.js';
import { NO_CONTENT_EVENTS } from '../src/images/content/checks.js';
import { summarizeLayer } from '../src/images/content/layer.js';
import { MemoryVerdictStore, storeTimes } from '../src/images/content/store.js';
import { createInspector, inspectorFor } from '../src/images/inspector.js';
import { startControlPlane } from '../test/cluster/controlplane.js';
import { deployManifests } from '../test/cluster/deploy.js';
import { elfBinaries, gzipLayer, pushLayers } from '../test/registry/layers.js';
import { startRegistry } from '../test/registry/registry.js';

export interface ContentBench {
  layer: {
    compressedBytes: number;
    files: number;
    baselineS: number;
    scanS: number;
    ratio: number;
    peakRssGrowthBytes: number;
  };
  knownVerdictAddedNs: number;
  informer?: { verdicts: number; heapBytes: number; perVerdictBytes: number };
}

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const gc = () => (globalThis as { gc?: () => void }).gc?.();

/** A real layer: this machine's /usr/lib/x86_64-linux-gnu and /usr/share/doc (ELF libraries, many small files). */
function makeLayer(): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kata-admission-bench-layer-')), 'layer.tar.gz');
  spawnSync('tar', ['-czf', file, '-C', '/', 'usr/lib/x86_64-linux-gnu', 'usr/share/doc'], {
    stdio: 'ignore',
  });
  return file;
}

async function benchLayer(): Promise<ContentBench['layer']> {
  const file = makeLayer();
  const baseline: number[] = [];
  const scan: number[] = [];
  let files = 0;
  let peak = 0;
  for (let round = 0; round < 3; round++) {
    let start = performance.now();
    spawnSync('sh', ['-c', `gzip -dc '${file}' | tar -t > /dev/null`]);
    baseline.push((performance.now() - start) / 1000);
    start = performance.now();
    files = (await summarizeLayer(createReadStream(file), 'gzip')).paths.length;
    scan.push((performance.now() - start) / 1000);
  }
  // Memory in a round of its own: sampling RSS every few milliseconds slows the scan it watches.
  gc();
  const before = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss - before)), 5);
  await summarizeLayer(createReadStream(file), 'gzip');
  clearInterval(sampler);
  const baselineS = median(baseline);
  const scanS = median(scan);
  return {
    compressedBytes: statSync(file).size,
    files,
    baselineS,
    scanS,
    ratio: scanS / baselineS,
    peakRssGrowthBytes: peak,
  };
}

/** inspect() of one image whose config verdict is cached, with and without a stored content verdict. */
async function benchKnownVerdict(): Promise<number> {
  const registry = await startRegistry(
    join(mkdtempSync(join(tmpdir(), 'kata-admission-bench-content-')), 'storage'),
  );
  try {
    const { amd64 } = elfBinaries();
    await pushLayers(`http://${registry.host}`, 'ci/app', 'v1', [gzipLayer({ 'usr/bin/app': amd64 })]);
    const parsed = parseConfig(
      `imageInspection: {enabled: true, registries: {"${registry.host}": {insecure: true}}, content: {enabled: true}}`,
    );
    if (!parsed.ok) throw new Error(parsed.problems.join('; '));
    const config = parsed.policy.config.imageInspection;
    const withContent = inspectorFor(config, undefined, {
      store: new MemoryVerdictStore(storeTimes(config.content)),
      events: NO_CONTENT_EVENTS,
    })!;
    const without = createInspector(config);
    const image = `${registry.host}/ci/app:v1`;
    await without.inspect([image]);
    await withContent.inspect([image]);
    await withContent.content!.idle();
    const time = async (inspector: typeof without) => {
      const rounds: number[] = [];
      for (let r = 0; r < 7; r++) {
        const start = process.hrtime.bigint();
        for (let i = 0; i < 100_000; i++) await inspector.inspect([image]);
        rounds.push(Number(process.hrtime.bigint() - start) / 100_000);
      }
      return median(rounds);
    };
    await time(without);
    return (await time(withContent)) - (await time(without));
  } finally {
    await registry.stop();
  }
}

/** 10,000 realistic ImageVerdict objects on a real API server, and the heap an informer of them holds. */
async function benchInformer(count = 10_000): Promise<ContentBench['informer']> {
  const cp = await startControlPlane();
  try {
    const api = cp.admin.makeApiClient(CustomObjectsApi);
    const { KubernetesObjectApi } = await import('@kubernetes/client-node');
    const objects = KubernetesObjectApi.makeApiClient(cp.admin);
    await objects.create(deployManifests().find((m) => m.kind === 'CustomResourceDefinition') as never);
    for (;;) {
      try {
        await api.listClusterCustomObject(VERDICT_API);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const hex = i.toString(16).padStart(64, '0');
        await api.createClusterCustomObject({
          ...VERDICT_API,
          body: {
            apiVersion: 'kata-admission.io/v1alpha1',
            kind: 'ImageVerdict',
            metadata: { name: `sha256-${hex}` },
            spec: {
              digest: `sha256:${hex}`,
              image: `registry.example.com/ci/team-${i % 300}/build@sha256:${hex}`,
            },
            status: {
              phase: 'Scanned',
              class: i % 10 === 0 ? '32-bit' : 'ok',
              outcome: 'scanned',
              detail:
                i % 10 === 0
                  ? '/usr/lib32/libc.so.6, /usr/lib32/libm.so.6, /opt/sdk/bin/aapt and 41 more 32-bit ELF files'
                  : 'debian 12, glibc 2.36, 0 32-bit ELF files',
              os: 'debian 12',
              glibc: '2.36',
              elf32Count: i % 10 === 0 ? 44 : 0,
              evidence:
                i % 10 === 0 ? ['/usr/lib32/libc.so.6', '/usr/lib32/libm.so.6', '/opt/sdk/bin/aapt'] : [],
              bytes: 123_456_789,
              seconds: 4.2,
              scanner: 'kata-admission-7d9f8-abcde',
              claimedAt: new Date().toISOString(),
              scannedAt: new Date().toISOString(),
            },
          },
        });
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    gc();
    const before = process.memoryUsage().heapUsed;
    const store = new ClusterVerdictStore(cp.admin, {
      ...storeTimes({
        maxImageSeconds: 600,
        retryFailedSeconds: 600,
        forgetAfterSeconds: 2_592_000,
        failedForgetAfterSeconds: 21_600,
      }),
      scanner: 'bench',
      flushMs: 3_600_000,
    });
    await store.synced;
    gc();
    const heapBytes = process.memoryUsage().heapUsed - before;
    const verdicts = store.size();
    store.stop();
    return { verdicts, heapBytes, perVerdictBytes: heapBytes / verdicts };
  } finally {
    await cp.stop();
  }
}

export async function benchContent(withCluster: boolean): Promise<ContentBench> {
  const layer = await benchLayer();
  const knownVerdictAddedNs = await benchKnownVerdict();
  return { layer, knownVerdictAddedNs, ...(withCluster && { informer: await benchInformer() }) };
}
