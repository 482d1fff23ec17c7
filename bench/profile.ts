// `npm run bench:profile`: the server's CPU profile under load (`node --cpu-prof`, the process as
// the Deployment runs it, 8 connections of the executor pod's review), as a flame graph (SVG) and
// a table of where each request's CPU goes, by area of the code. Written to bench/results/.
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { ensureCerts } from '../src/tls/certs.js';
import { freePort } from '../test/cluster/controlplane.js';
import { deploymentNodeArgs } from '../test/cluster/deploy.js';
import { flameGraphSvg, profileTree, selfTimeByArea, type CpuProfile } from './flame.js';
import { reviewText } from './pods.js';
import { serving } from './process.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const seconds = Number(process.env.BENCH_SECONDS ?? 10);

const dir = mkdtempSync(join(tmpdir(), 'kata-admission-profile-'));
await ensureCerts(dir, ['localhost'], ['127.0.0.1']);
const port = await freePort();
const node = [...deploymentNodeArgs(), '--cpu-prof', '--cpu-prof-dir', dir];
const serve = ['dist/main.js', 'serve', '--port', String(port), '--host', '127.0.0.1', '--log-level', 'info'];
const tls = ['--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key')];
const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
const server = await serving([...node, ...serve, ...tls], port, ca);
const run = (duration: number) =>
  autocannon({
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    body: reviewText(0),
    connections: 8,
    duration,
    headers: { 'content-type': 'application/json' },
  });
await run(2); // warm up: what the JIT does first is not the steady state
const result = await run(seconds);
server.kill('SIGTERM'); // the profile is written as the process exits
await once(server, 'exit');

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))!;
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
// The warm-up's requests are in the profile too: about two seconds' worth.
const requests = result.requests.total + 2 * result.requests.average;
const tree = profileTree(profile, ROOT);
const areas = selfTimeByArea(tree);
const total = areas.reduce((n, r) => n + r.us, 0);
const small = areas.filter((r) => r.us < total / 200);
const rows = [
  ...areas.filter((r) => r.us >= total / 200),
  { area: `${small.length} other areas, each under 0.5%`, us: small.reduce((n, r) => n + r.us, 0) },
];
const lines = [
  `${result.requests.total} requests at 8 connections over ${seconds} s (${Math.round(result.requests.average)}/s), plus the warm-up's and the start's; ${(total / requests).toFixed(0)} µs of CPU per request on the main thread, profiler included (the profile slows the process; read the shares). A builtin or native call (\`JSON.parse\`, a TLS write) counts in its caller's area.`,
  '',
  '| area (self time) | share | per request |',
  '| --- | --- | --- |',
  ...rows.map(
    (r) => `| ${r.area} | ${((100 * r.us) / total).toFixed(1)}% | ${(r.us / requests).toFixed(1)} µs |`,
  ),
];
const out = join(ROOT, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'server-profile.md'), lines.join('\n') + '\n');
writeFileSync(join(out, 'server-flame.svg'), flameGraphSvg(tree));
console.log(lines.join('\n'));
console.error(`wrote bench/results/server-profile.md and bench/results/server-flame.svg (from ${file})`);
