// /mutate over TLS with keep-alive under load, against a bare node:https server in the same run.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { ensureCerts } from '../src/tls/certs.js';
import { freePort } from '../test/cluster/controlplane.js';
import { deploymentNodeArgs } from '../test/cluster/deploy.js';
import { serving } from './process.js';
import { reviewText } from './pods.js';

export interface LoadResult {
  server: 'bare node:https' | 'kata-admission';
  connections: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  /** The server process's CPU time (user + system) per request answered. */
  cpuUsPerRequest: number;
  /** Against the bare server, median of the per-round ratios (1 for the bare server itself). */
  throughputRatio: number;
  p99Ratio: number;
  cpuRatio: number;
}

const CLOCK_TICK_US =
  1e6 / Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

/** The process's CPU time so far (utime + stime from /proc), in microseconds. */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_US;
}

async function load(server: ChildProcess, port: number, body: string, connections: number, seconds: number) {
  const cpuBefore = cpuUs(server.pid!);
  const result = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    body,
    connections,
    duration: seconds,
    pipelining: 1,
    headers: { 'content-type': 'application/json' },
  });
  return Object.assign(result, { cpuUsPerRequest: (cpuUs(server.pid!) - cpuBefore) / result.requests.total });
}
type Load = Awaited<ReturnType<typeof load>>;

export interface ServerBench {
  load: LoadResult[];
  memory: { idleRssBytes: number; afterLoadRssBytes: number; after3MiBRssBytes: number; bigBodies: number };
}

async function rssOf(port: number, ca: string): Promise<number> {
  const { httpsRequest } = await import('../test/https.js');
  const res = await httpsRequest(port, ca, { path: '/metrics', method: 'GET' });
  return Number(/^kata_admission_process_resident_memory_bytes (\d+)/m.exec(res.body)![1]);
}

type Server = { process: ChildProcess; port: number };
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** Both servers at `connections`, in alternating rounds so both meet the same noise; medians of each figure and ratio. */
async function atConnections(
  [bare, ours]: [Server, Server],
  body: string,
  connections: number,
  { seconds, rounds: count }: { seconds: number; rounds: number },
): Promise<LoadResult[]> {
  const run = (s: Server, duration: number) => load(s.process, s.port, body, connections, duration);
  await run(bare, 1); // warm both up
  await run(ours, 1);
  const rounds: { bare: Load; ours: Load }[] = [];
  for (let r = 0; r < count; r++) {
    const bareRun = await run(bare, seconds);
    rounds.push({ bare: bareRun, ours: await run(ours, seconds) });
  }
  const summary = (pick: (r: (typeof rounds)[number]) => Load) => ({
    connections,
    requestsPerSecond: median(rounds.map((r) => pick(r).requests.average)),
    p50Ms: median(rounds.map((r) => pick(r).latency.p50)),
    p99Ms: median(rounds.map((r) => pick(r).latency.p99)),
    maxMs: Math.max(...rounds.map((r) => pick(r).latency.max)),
    errors: rounds.reduce((n, r) => n + pick(r).errors + pick(r).timeouts + pick(r).non2xx, 0),
    cpuUsPerRequest: median(rounds.map((r) => pick(r).cpuUsPerRequest)),
  });
  return [
    { server: 'bare node:https', ...summary((r) => r.bare), throughputRatio: 1, p99Ratio: 1, cpuRatio: 1 },
    {
      server: 'kata-admission',
      ...summary((r) => r.ours),
      throughputRatio: median(rounds.map((r) => r.ours.requests.average / r.bare.requests.average)),
      cpuRatio: median(rounds.map((r) => r.ours.cpuUsPerRequest / r.bare.cpuUsPerRequest)),
      // autocannon reports whole milliseconds; below 1 ms both count as 1.
      p99Ratio: median(rounds.map((r) => Math.max(r.ours.latency.p99, 1) / Math.max(r.bare.latency.p99, 1))),
    },
  ];
}

/** RSS after 60 bodies just under the 3 MiB limit (a pod with many containers), 4 at a time. */
async function afterBigBodies(port: number, ca: string, bigBodies: number): Promise<number> {
  let big = reviewText(200);
  while (big.length < 2.9 * 1024 * 1024)
    big = reviewText(Math.round((200 * (2.9 * 1024 * 1024)) / reviewText(200).length) + 20);
  const r = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    body: big,
    connections: 4,
    amount: bigBodies,
    headers: { 'content-type': 'application/json' },
  });
  if (r.errors + r.non2xx > 0)
    throw new Error(`3 MiB bodies failed: ${r.errors} errors, ${r.non2xx} non-2xx`);
  return rssOf(port, ca);
}

export async function benchServer(seconds = 4, rounds = 3): Promise<ServerBench> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-bench-'));
  await ensureCerts(dir, ['localhost'], ['127.0.0.1']);
  const [cert, key] = [join(dir, 'tls.crt'), join(dir, 'tls.key')];
  const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const [barePort, ourPort] = [await freePort(), await freePort()];
  const bare = await serving(['bench/bare-server.mjs', String(barePort), cert, key], barePort, ca);
  const serve = ['dist/main.js', 'serve', '--port', String(ourPort), '--host', '127.0.0.1'];
  const ours = await serving(
    [...deploymentNodeArgs(), ...serve, '--tls-cert', cert, '--tls-key', key, '--log-level', 'info'],
    ourPort,
    ca,
  );
  const servers: [Server, Server] = [
    { process: bare, port: barePort },
    { process: ours, port: ourPort },
  ];
  try {
    const idleRssBytes = await rssOf(ourPort, ca);
    const results: LoadResult[] = [];
    for (const connections of [1, 8, 32])
      results.push(...(await atConnections(servers, reviewText(0), connections, { seconds, rounds })));
    const afterLoadRssBytes = await rssOf(ourPort, ca);
    const bigBodies = 60;
    const after3MiBRssBytes = await afterBigBodies(ourPort, ca, bigBodies);
    return { load: results, memory: { idleRssBytes, afterLoadRssBytes, after3MiBRssBytes, bigBodies } };
  } finally {
    bare.kill('SIGTERM');
    ours.kill('SIGTERM');
  }
}
