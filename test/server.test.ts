// The real server: HTTPS with certificates made by `kata-admission certs`, rotation, config
// reload, and SIGTERM, all over real sockets.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../src/observability/logger.js';
import { ensureCerts, generateCa, generateServingCert } from '../src/tls/certs.js';
import { startWebhook, type Webhook } from '../src/server/webhook.js';
import { fixture, withPod } from './helpers.js';
import { deploymentNodeArgs, manifest } from './cluster/deploy.js';
import { eventually, httpsRequest } from './https.js';
import { BIN, serve } from './serve.js';
import { parsePrometheus } from './prometheus.js';

const SERVICE = 'kata-admission';
const NAMESPACE = 'kata-admission';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kata-admission-'));
}

const quiet = createLogger('silent');
const review = JSON.stringify(fixture('build-plain'));

describe('kata-admission certs', () => {
  it('makes a CA and a serving cert for the Service, keys 0600, and prints the caBundle', () => {
    const dir = tempDir();
    const run = spawnSync(
      process.execPath,
      [BIN, 'certs', '--service', SERVICE, '--namespace', NAMESPACE, '--out', dir],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
    assert.equal(Buffer.from(run.stdout.trim(), 'base64').toString(), caPem);
    assert.equal(statSync(join(dir, 'tls.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    const cert = new X509Certificate(readFileSync(join(dir, 'tls.crt')));
    for (const name of [
      SERVICE,
      `${SERVICE}.${NAMESPACE}`,
      `${SERVICE}.${NAMESPACE}.svc`,
      `${SERVICE}.${NAMESPACE}.svc.cluster.local`,
      'localhost',
    ]) {
      assert.equal(cert.checkHost(name), name);
    }
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(cert.verify(new X509Certificate(caPem).publicKey));
    assert.equal(cert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);

    const again = spawnSync(
      process.execPath,
      [BIN, 'certs', '--service', SERVICE, '--namespace', NAMESPACE, '--out', dir],
      { encoding: 'utf8' },
    );
    assert.equal(again.stdout, run.stdout, 'a valid CA is reused, so the registered caBundle stays right');
  });

  it('reuses valid dev certificates on the next start, and renews a serving cert that lacks a host', async () => {
    const dir = tempDir();
    const first = await ensureCerts(dir, ['localhost'], ['127.0.0.1']);
    const second = await ensureCerts(dir, ['localhost'], ['127.0.0.1']);
    assert.equal(first.created, true);
    assert.equal(second.created, false);
    assert.equal(second.serving.certPem, first.serving.certPem);
    const widened = await ensureCerts(dir, ['localhost', 'webhook.example'], ['127.0.0.1']);
    assert.equal(widened.created, true);
    assert.equal(widened.ca.certPem, first.ca.certPem, 'same CA');
    assert.notEqual(widened.serving.certPem, first.serving.certPem);
  });
});

describe('HTTPS server', () => {
  let dir: string;
  let ca: string;
  let webhook: Webhook;

  before(async () => {
    dir = tempDir();
    const bundle = await ensureCerts(
      dir,
      [SERVICE, `${SERVICE}.${NAMESPACE}.svc`, 'localhost'],
      ['127.0.0.1'],
    );
    ca = bundle.ca.certPem;
    webhook = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      tlsCert: join(dir, 'tls.crt'),
      tlsKey: join(dir, 'tls.key'),
      devCertsDir: dir,
      logger: quiet,
      certPollMs: 50,
    });
  });
  after(() => webhook.shutdown());

  it('answers a client that trusts only the CA and checks the Service host name', async () => {
    const res = await httpsRequest(webhook.port, ca, {
      body: review,
      servername: `${SERVICE}.${NAMESPACE}.svc`,
    });
    assert.equal(res.status, 200);
    assert.equal(res.json.response.uid, fixture('build-plain').request.uid);
    assert.equal((await httpsRequest(webhook.port, ca, { path: '/readyz', method: 'GET' })).status, 200);
  });

  it('shares its port with another process only with --reuse-port; the second one answers once the first closes', async () => {
    const options = {
      host: '127.0.0.1',
      tlsCert: join(dir, 'tls.crt'),
      tlsKey: join(dir, 'tls.key'),
      devCertsDir: dir,
      logger: quiet,
    };
    await assert.rejects(startWebhook({ ...options, port: webhook.port }), /EADDRINUSE/);
    const first = await startWebhook({ ...options, port: 0, reusePort: true });
    const second = await startWebhook({ ...options, port: first.port, reusePort: true });
    try {
      await first.shutdown();
      assert.equal((await httpsRequest(second.port, ca, { body: review })).status, 200);
    } finally {
      await second.shutdown();
    }
  });

  it('fails a client that trusts another CA, or expects another host', async () => {
    const otherCa = generateCa('someone else').certPem;
    await assert.rejects(
      httpsRequest(webhook.port, otherCa, { body: review }),
      /self-signed|unable to verify|certificate/i,
    );
    await assert.rejects(
      httpsRequest(webhook.port, ca, { body: review, servername: 'evil.example.com' }),
      /altnames|Hostname/i,
    );
  });

  it('rejects TLS below 1.2', async () => {
    await assert.rejects(
      new Promise((resolve, reject) => {
        import('node:tls').then((tls) => {
          const socket = tls.connect(
            {
              host: '127.0.0.1',
              port: webhook.port,
              ca,
              servername: 'localhost',
              maxVersion: 'TLSv1.1',
              minVersion: 'TLSv1',
            },
            () => resolve(socket.getProtocol()),
          );
          socket.on('error', reject);
        });
      }),
    );
  });

  it('serves a rotated certificate with zero failed requests, and refuses a broken pair', async () => {
    const caPair = { certPem: ca, keyPem: readFileSync(join(dir, 'ca.key'), 'utf8') };
    const before = (await httpsRequest(webhook.port, ca, { body: review })).serial;
    let failures = 0;
    const serials = new Set<string>();
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        try {
          const res = await httpsRequest(webhook.port, ca, { body: review });
          if (res.status !== 200) failures++;
          serials.add(res.serial);
        } catch {
          failures++;
        }
      }
    })();

    // A half-written rotation (new key, old cert) must be refused while the old pair keeps serving.
    const next = generateServingCert(caPair, [SERVICE, 'localhost'], ['127.0.0.1']);
    writeFileSync(join(dir, 'tls.key'), next.keyPem);
    const nextSerial = new X509Certificate(next.certPem).serialNumber;
    try {
      await eventually(
        async () =>
          (await readMetric(webhook, 'kata_admission_certificate_reloads_total', { result: 'failure' })) >= 1,
        5000,
        'a refused pair',
      );
      assert.equal((await httpsRequest(webhook.port, ca, { body: review })).serial, before);
      writeFileSync(join(dir, 'tls.crt'), next.certPem);
      await eventually(
        async () => (await httpsRequest(webhook.port, ca, { body: review })).serial === nextSerial,
        5000,
        'the new certificate',
      );
    } finally {
      streaming = false;
      await stream;
    }
    assert.equal(failures, 0);
    assert.ok(serials.has(before) && serials.has(nextSerial), `saw ${[...serials].join(', ')}`);
  });
});

async function readMetric(
  webhook: Webhook,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const samples = parsePrometheus(await webhook.metrics.registry.metrics());
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** Writes a file the way a careful editor or the kubelet does: a new file renamed over the old one. */
function writeAtomically(path: string, text: string) {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('config hot reload', () => {
  it('applies a good change to the next request and keeps the last good config on a bad or empty one', async () => {
    const dir = tempDir();
    const configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, 'weightage: 100\n');
    const webhook = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      configPath,
      devCertsDir: dir,
      logger: quiet,
      configPollMs: 30,
    });
    const ca = readFileSync(webhook.devCaFile!, 'utf8');
    const route = async () =>
      (await httpsRequest(webhook.port, ca, { body: review })).json.response.auditAnnotations.route;
    const reloads = (result: string) =>
      readMetric(webhook, 'kata_admission_config_reloads_total', { result });
    try {
      assert.equal(await route(), 'kata');
      writeAtomically(configPath, 'weightage: 0\n');
      await eventually(async () => (await reloads('success')) === 1, 5000, 'the reload to be counted');
      assert.equal(await route(), 'legacy');

      writeAtomically(configPath, 'weightage: 500\nmode: sideways\n');
      await eventually(async () => (await reloads('failure')) === 1, 5000, 'the rejection');
      assert.equal(await route(), 'legacy', 'the last good config stays in force');
      // A truncated file (what a non-atomic write looks like half-way) is refused, not read as the default.
      writeFileSync(configPath, '');
      await eventually(async () => (await reloads('failure')) === 2, 5000, 'the empty file to be refused');
      assert.equal(await route(), 'legacy', 'an empty file is not the embedded default');
      assert.equal(await reloads('success'), 1);
      assert.equal((await httpsRequest(webhook.port, ca, { path: '/readyz', method: 'GET' })).status, 200);
      const info = parsePrometheus(await webhook.metrics.registry.metrics()).filter(
        (s) => s.name === 'kata_admission_config_info',
      );
      assert.deepEqual(
        info.map((s) => s.labels.hash),
        [webhook.policy().hash],
      );
    } finally {
      await webhook.shutdown();
    }
  });

  it('follows a ConfigMap mount whose ..data symlink is swapped', async () => {
    const dir = tempDir();
    const mount = join(dir, 'mount');
    mkdirSync(join(mount, '..2026_11_25_a'), { recursive: true });
    writeFileSync(join(mount, '..2026_11_25_a', 'config.yaml'), 'weightage: 100\n');
    symlinkSync('..2026_11_25_a', join(mount, '..data'));
    symlinkSync('..data/config.yaml', join(mount, 'config.yaml'));
    const webhook = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      configPath: join(mount, 'config.yaml'),
      devCertsDir: dir,
      logger: quiet,
      configPollMs: 30,
    });
    const ca = readFileSync(webhook.devCaFile!, 'utf8');
    try {
      // What the kubelet does: write a new timestamped folder, then atomically repoint ..data.
      mkdirSync(join(mount, '..2026_11_25_b'));
      writeFileSync(join(mount, '..2026_11_25_b', 'config.yaml'), 'weightage: 0\n');
      symlinkSync('..2026_11_25_b', join(mount, '..data_tmp'));
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
      rmSync(join(mount, '..2026_11_25_a'), { recursive: true });
      await eventually(
        async () =>
          (await httpsRequest(webhook.port, ca, { body: review })).json.response.auditAnnotations.route ===
          'legacy',
        5000,
        'the swapped config',
      );
    } finally {
      await webhook.shutdown();
    }
  });
});

describe('graceful shutdown', () => {
  it('answers every accepted request after SIGTERM, then exits 0', async () => {
    const dir = tempDir();
    await ensureCerts(dir, ['localhost'], ['127.0.0.1']);
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const served = serve([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--tls-cert',
      join(dir, 'tls.crt'),
      '--tls-key',
      join(dir, 'tls.key'),
      '--log-level',
      'info',
    ]);
    const { child, logs } = served;
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const port = await served.port(10_000);

      // One request is in flight across the signal: half its body before SIGTERM, the rest after.
      const { request } = await import('node:https');
      const slowUid = 'slow-request-across-sigterm';
      const slowBody = JSON.stringify({
        ...fixture('build-plain'),
        request: { ...fixture('build-plain').request, uid: slowUid },
      });
      const slow = new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: '/mutate',
            method: 'POST',
            ca,
            servername: 'localhost',
            agent: false,
            headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(slowBody) },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          },
        );
        req.on('error', reject);
        req.write(slowBody.slice(0, 1000));
        // The rest of the body only after the server has begun shutting down.
        eventually(
          () => logs.some((l) => l.msg?.startsWith('shutting down')),
          10_000,
          'shutdown to begin',
        ).then(() => req.end(slowBody.slice(1000)), reject);
      });

      const answered = new Set<string>();
      const errors: string[] = [];
      const clients = Array.from({ length: 4 }, async (_, c) => {
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        for (let i = 0; i < 400; i++) {
          const uid = `c${c}-r${i}`;
          try {
            const res = await httpsRequest(port, ca, {
              agent,
              body: JSON.stringify({
                ...fixture('build-plain'),
                request: { ...fixture('build-plain').request, uid },
              }),
            });
            if (res.status === 200 && res.json.response.uid === uid) answered.add(uid);
          } catch (error) {
            errors.push((error as NodeJS.ErrnoException).code ?? String(error));
            break; // the server is gone for this client
          }
        }
        agent.destroy();
      });
      // Signal once the clients are demonstrably mid-stream.
      await eventually(() => answered.size >= 20, 10_000, 'requests to be answered');
      child.kill('SIGTERM');
      const [slowStatus] = await Promise.all([slow, ...clients]);
      const code = await exited;

      assert.equal(slowStatus, 200, 'the request in flight at SIGTERM is answered');
      assert.equal(code, 0);
      const admissions = logs.filter((l) => l.msg === 'admission');
      for (const field of [
        'uid',
        'namespace',
        'pod',
        'operation',
        'dryRun',
        'route',
        'reason',
        'patchOps',
        'durationMs',
      ]) {
        assert.ok(field in admissions[0], `the admission log line has ${field}`);
      }
      assert.ok(!JSON.stringify(admissions[0]).includes('"spec"'), 'no pod body in the log');
      const accepted = admissions.map((l) => l.uid as string);
      assert.ok(answered.size > 0 && accepted.length > 0);
      for (const uid of accepted)
        if (uid !== slowUid) assert.ok(answered.has(uid), `request ${uid} was accepted but not answered`);
      assert.ok(
        errors.every((e) => ['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(e)),
        `unexpected errors: ${errors.join(', ')}`,
      );
      assert.ok(logs.some((l) => l.msg === 'stopped'));
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('bounded under abuse', () => {
  it('refuses a serving certificate that is not valid yet, like an expired one', async () => {
    const dir = tempDir();
    await ensureCerts(dir, ['localhost'], ['127.0.0.1']);
    const webhook = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      tlsCert: join(dir, 'tls.crt'),
      tlsKey: join(dir, 'tls.key'),
      devCertsDir: dir,
      logger: quiet,
      certPollMs: 30,
    });
    try {
      const caPair = {
        certPem: readFileSync(join(dir, 'ca.crt'), 'utf8'),
        keyPem: readFileSync(join(dir, 'ca.key'), 'utf8'),
      };
      const future = generateServingCert(
        caPair,
        ['localhost'],
        ['127.0.0.1'],
        365,
        new Date(Date.now() + 24 * 3600 * 1000),
      );
      writeAtomically(join(dir, 'tls.key'), future.keyPem);
      writeAtomically(join(dir, 'tls.crt'), future.certPem);
      await eventually(
        async () =>
          (await readMetric(webhook, 'kata_admission_certificate_reloads_total', { result: 'failure' })) >= 1,
        5000,
        'the refusal',
      );
      assert.equal(
        await readMetric(webhook, 'kata_admission_certificate_reloads_total', { result: 'success' }),
        0,
      );
      const res = await httpsRequest(webhook.port, caPair.certPem, { path: '/readyz', method: 'GET' });
      assert.equal(res.status, 200);
      assert.notEqual(res.serial, new X509Certificate(future.certPem).serialNumber);
    } finally {
      await webhook.shutdown();
    }
  });

  it(
    'closes a connection that sends no request within the headers timeout, and one that never finishes its handshake',
    { timeout: 10_000 },
    async () => {
      const dir = tempDir();
      const webhook = await startWebhook({
        port: 0,
        host: '127.0.0.1',
        devCertsDir: dir,
        logger: quiet,
        headersTimeoutMs: 300,
      });
      try {
        const tls = await import('node:tls');
        const net = await import('node:net');
        const closed = (socket: import('node:net').Socket) =>
          new Promise<void>((resolve) => socket.once('close', () => resolve()));
        const silent = tls.connect({ host: '127.0.0.1', port: webhook.port, rejectUnauthorized: false });
        const raw = net.connect({ host: '127.0.0.1', port: webhook.port });
        silent.on('error', () => {});
        raw.on('error', () => {});
        await Promise.all([closed(silent), closed(raw)]); // the test's own timeout is the bound
      } finally {
        await webhook.shutdown();
      }
    },
  );

  it('makes room for a new connection by closing the oldest one that never sent a request', async () => {
    const dir = tempDir();
    const webhook = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      devCertsDir: dir,
      logger: quiet,
      maxConnections: 5,
    });
    const ca = readFileSync(webhook.devCaFile!, 'utf8');
    const tls = await import('node:tls');
    const idle = Array.from({ length: 10 }, () =>
      tls
        .connect({ host: '127.0.0.1', port: webhook.port, ca, servername: 'localhost' })
        .on('error', () => {}),
    );
    try {
      await Promise.all(
        idle.map(
          (s) =>
            new Promise((resolve) => {
              s.once('secureConnect', resolve);
              s.once('close', resolve);
            }),
        ),
      );
      const res = await httpsRequest(webhook.port, ca, { body: review });
      assert.equal(res.status, 200);
      await eventually(
        async () => (await new Promise<number>((r) => webhook.server.getConnections((_e, n) => r(n)))) <= 5,
        5000,
        'at most 5 connections',
      );
    } finally {
      for (const s of idle) s.destroy();
      await webhook.shutdown();
    }
  });

  it(
    'keeps RSS under the Deployment limit with 4,000 idle TLS connections and 50 pods with 3 MB names, answering meanwhile',
    { timeout: 180_000 },
    async () => {
      const dir = tempDir();
      await ensureCerts(dir, ['localhost'], ['127.0.0.1']);
      const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
      // The process as the Deployment runs it: its NODE_OPTIONS, judged against its memory limit.
      const served = serve(
        [
          '--port',
          '0',
          '--host',
          '127.0.0.1',
          '--tls-cert',
          join(dir, 'tls.crt'),
          '--tls-key',
          join(dir, 'tls.key'),
        ],
        { nodeArgs: deploymentNodeArgs() },
      );
      const { child } = served;
      const tls = await import('node:tls');
      const sockets: import('node:tls').TLSSocket[] = [];
      try {
        const port = await served.port(10_000);
        const open = () =>
          new Promise<void>((resolve) => {
            const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () =>
              resolve(),
            );
            socket.on('error', () => resolve());
            socket.on('close', () => resolve());
            sockets.push(socket);
          });
        for (let batch = 0; batch < 40; batch++) await Promise.all(Array.from({ length: 100 }, open));

        const big = (i: number) => {
          const review = withPod(fixture('build-plain'), (pod) => {
            pod.metadata!.name = `${i}-${'n'.repeat(3 * 1024 * 1024)}`;
            pod.metadata!.labels = { app: 'screwdriver', tier: 'builds' }; // no rollout labels: the name is the key
          });
          return JSON.stringify(review);
        };
        const answered = await Promise.all(
          Array.from({ length: 50 }, async (_, i) => (await httpsRequest(port, ca, { body: big(i) })).status),
        );
        assert.deepEqual([...new Set(answered)], [200]);
        const normal = await httpsRequest(port, ca, { body: review });
        assert.equal(normal.status, 200, 'answers other requests meanwhile');

        const peakKiB = Number(
          /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1],
        );
        const { limits } = manifest('Deployment').spec.template.spec.containers[0].resources;
        const limitMiB = parseInt(limits.memory, 10);
        assert.ok(
          peakKiB / 1024 < limitMiB,
          `peak RSS ${Math.round(peakKiB / 1024)} MiB is over the ${limitMiB} MiB limit`,
        );
      } finally {
        for (const socket of sockets) socket.destroy();
        child.kill('SIGKILL');
      }
    },
  );
});
