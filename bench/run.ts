// `npm run bench`: every figure next to a baseline measured in the same run, as a ratio.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { benchEngine } from './engine.js';
import { spawnSync } from 'node:child_process';
import type { MemoryResult } from './memory.js';
import { benchContent } from './content.js';
import { benchImages } from './images.js';
import { benchServer } from './server.js';
import { benchApiServer } from './apiserver.js';
import { benchStages } from './stages.js';

/** A ratio with its target, and whether this run met it. */
const target = (ratio: number, limit: number) =>
  `${ratio.toFixed(2)}x (target <= ${limit}x: ${ratio <= limit ? 'met' : 'not met'})`;
const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const us = (ns: number) => `${(ns / 1000).toFixed(1)} µs`;
const machine = `${cpus().length} × ${cpus()[0]?.model.trim()}, ${mib(totalmem())} RAM, Node ${process.version}`;

const seconds = Number(process.env.BENCH_SECONDS ?? 4);
const admissions = Number(process.env.BENCH_ADMISSIONS ?? 1_000_000);
console.error(`machine: ${machine}\nengine...`);
const engine = await benchEngine();
const stages = await benchStages();
console.error('server...');
const server = await benchServer(seconds);
const hasRegistry = spawnSync('sh', ['-c', 'command -v docker-registry'], { stdio: 'ignore' }).status === 0;
console.error(
  hasRegistry
    ? 'image inspection...'
    : 'image inspection skipped: the docker-registry package is not installed',
);
const images = hasRegistry ? await benchImages() : undefined;
console.error(hasRegistry ? 'content scanning...' : 'content scanning skipped: no docker-registry');
const content = hasRegistry ? await benchContent(true) : undefined;
console.error('through a real kube-apiserver...');
const apiServer = await benchApiServer().catch((error: Error) => {
  console.error(`skipped: ${error.message}`);
  return undefined;
});
console.error(`memory over ${admissions} admissions...`);
// In its own process, so what the other benchmarks allocated does not blur the figures.
const child = spawnSync(
  process.execPath,
  ['--expose-gc', '--import', 'tsx', new URL('./memory.ts', import.meta.url).pathname, String(admissions)],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
);
if (child.status !== 0) throw new Error('memory benchmark failed');
const memory = JSON.parse(child.stdout) as MemoryResult;

const lines = [
  `Machine: ${machine}. Ratios compare figures measured in the same run.`,
  '',
  '| engine (per admission) | review size | JSON.parse (baseline) | decide+mutate+diff | ratio | whole review path | ratio | target |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ...engine.map(
    (e, i) =>
      `| ${e.pod} | ${(e.bytes / 1024).toFixed(0)} KiB | ${us(e.jsonParseNs)} | ${us(e.engineNs)} | ${e.engineRatio.toFixed(2)}x | ${us(e.reviewNs)} | ${e.reviewRatio.toFixed(2)}x | ${i === 0 ? target(e.reviewRatio, 0.5) : ''} |`,
  ),
  '',
  `| where the executor pod's review path goes (each stage alone) | time | vs JSON.parse (${us(stages.jsonParseNs)}) |`,
  '| --- | --- | --- |',
  ...stages.stages.map((s) => `| ${s.stage} | ${us(s.ns)} | ${s.ratio.toFixed(2)}x |`),
  '',
  '| /mutate over TLS, keep-alive | connections | req/s | p50 | p99 | max | errors | CPU per request | CPU vs bare (target <= 1.5x at 8, 32) | throughput vs bare | p99 vs bare (target <= 2x) |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...server.load.map((l) => {
    const baseline = l.server === 'bare node:https';
    const cpu = baseline
      ? '1.00x (baseline)'
      : l.connections === 1
        ? `${l.cpuRatio.toFixed(2)}x`
        : target(l.cpuRatio, 1.5);
    return `| ${l.server} | ${l.connections} | ${Math.round(l.requestsPerSecond)} | ${l.p50Ms} ms | ${l.p99Ms} ms | ${l.maxMs} ms | ${l.errors} | ${l.cpuUsPerRequest.toFixed(0)} µs | ${cpu} | ${baseline ? '1.00x (baseline)' : `${l.throughputRatio.toFixed(2)}x`} | ${baseline ? '1.00x' : target(l.p99Ratio, 2)} |`;
  }),
  '',
  '| pod CREATE through a real kube-apiserver (sequential) | p50 | p99 | added p50 over no webhook | vs the one-label webhook (target <= 1.15x) |',
  '| --- | --- | --- | --- | --- |',
  ...(apiServer
    ? [
        ...apiServer.modes.map((m) => {
          const added = m.addedMs === undefined ? '(baseline)' : `${m.addedMs.toFixed(2)} ms`;
          const ratio =
            m.vsOneLabel === undefined
              ? ''
              : m.mode === 'one-label webhook'
                ? '1.00x (baseline)'
                : m.mode === 'kata-admission + guard'
                  ? target(m.vsOneLabel, 1.15)
                  : `${m.vsOneLabel.toFixed(2)}x`;
          return `| ${m.mode} (${apiServer.pods} pods) | ${m.p50Ms.toFixed(1)} ms | ${m.p99Ms.toFixed(1)} ms | ${added} | ${ratio} |`;
        }),
        `| the webhook's own time per admission (its histogram's mean) | ${apiServer.webhookMeanMs.toFixed(2)} ms | | | |`,
      ]
    : ['| skipped | the control plane is not built (test/controlplane/build.sh) | | | |']),
  '',
  '| image inspection | figure |',
  '| --- | --- |',
  ...(images
    ? [
        `| review path without inspection (baseline) | ${us(images.withoutInspectionNs)} |`,
        `| review path, every image's verdict cached | ${us(images.cachedNs)} (adds ${us(images.cachedAddedNs)} for 3 images) |`,
        ...images.cold.map(
          (c) =>
            `| cold lookup of ${c.image} on loopback | ${c.ms.toFixed(1)} ms, ${c.registryRequests} registry round trips |`,
        ),
      ]
    : ['| skipped | install the docker-registry package |']),
  '',
  '| content scanning | figure |',
  '| --- | --- |',
  ...(content
    ? [
        `| one gzip layer of ${mib(content.layer.compressedBytes)} (${content.layer.files.toLocaleString('en')} entries): \`gzip -dc \\| tar -t\` (baseline) | ${content.layer.baselineS.toFixed(2)} s |`,
        `| the scanner on the same layer | ${content.layer.scanS.toFixed(2)} s (${target(content.layer.ratio, 1.1)}) |`,
        `| RSS growth at most, during the scan | ${mib(content.layer.peakRssGrowthBytes)} |`,
        `| what a stored content verdict adds to an admission | ${us(content.knownVerdictAddedNs)} |`,
        ...(content.informer
          ? [
              `| informer heap for ${content.informer.verdicts.toLocaleString('en')} ImageVerdicts (real API server) | ${mib(content.informer.heapBytes)} (${(content.informer.perVerdictBytes / 1024).toFixed(2)} KiB each) |`,
            ]
          : []),
      ]
    : ['| skipped | install the docker-registry package |']),
  '',
  '| memory | RSS | heap used |',
  '| --- | --- | --- |',
  `| review path, after 20k warm-up | ${mib(memory.warmRssBytes)} | ${mib(memory.warmHeapBytes)} |`,
  `| review path, after ${memory.admissions.toLocaleString('en')} more admissions | ${mib(memory.finalRssBytes)} (${(memory.finalRssBytes / memory.warmRssBytes).toFixed(2)}x) | ${mib(memory.finalHeapBytes)} (${(memory.finalHeapBytes / memory.warmHeapBytes).toFixed(2)}x) |`,
  `| server, idle, no cluster access (target <= 80 MiB) | ${mib(server.memory.idleRssBytes)} (${server.memory.idleRssBytes <= 80 * 1024 * 1024 ? 'met' : 'not met'}) | |`,
  ...(apiServer
    ? [
        `| server with cluster access (self-check on), after the API server runs | ${mib(apiServer.webhookRssBytes)} | |`,
      ]
    : []),
  `| server, after the load runs | ${mib(server.memory.afterLoadRssBytes)} | |`,
  `| server, after ${server.memory.bigBodies} bodies of ~2.9 MiB | ${mib(server.memory.after3MiBRssBytes)} | |`,
];
const markdown = lines.join('\n') + '\n';
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/latest.json', import.meta.url),
  JSON.stringify(
    { date: new Date().toISOString(), machine, engine, stages, server, apiServer, images, content, memory },
    null,
    2,
  ),
);
writeFileSync(new URL('./results/latest.md', import.meta.url), markdown);
console.log(markdown);
const errors = server.load.reduce((n, l) => n + l.errors, 0);
if (errors > 0) {
  console.error(`invalid run: ${errors} errors under load`);
  process.exitCode = 1;
}
