// A real kube-apiserver + etcd on loopback, built from the Go module proxy (test/controlplane),
// the way controller-runtime's envtest runs them: throwaway data and certs, always cleaned up.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { generateCa, generateServingCert, type KeyPair } from '../../src/tls/certs.js';
import { generateClientCert } from './pki.js';

const BUILD_SCRIPT = fileURLToPath(new URL('../controlplane/build.sh', import.meta.url));

export interface ControlPlane {
  url: string;
  /** The folder of its kube-apiserver, etcd and kubectl. */
  bin: string;
  /** Its CA certificate (PEM file): what pods get as kube-root-ca.crt. */
  caFile: string;
  /** system:masters */
  admin: KubeConfig;
  /** The build executor: a user that may only manage pods in the build namespace (once bound). */
  executor: KubeConfig;
  executorUser: string;
  stop(): Promise<void>;
}

const built = new Map<string, string>();

/**
 * The folder test/controlplane/build.sh prints for `what`: the newest Kubernetes minor's
 * kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS, the cache, or a fresh build), an older
 * minor's (`v1.35`), or `tools` (kustomize, helm).
 */
export function builtBinaries(what = ''): string {
  let dir = built.get(what);
  if (!dir) {
    const result = spawnSync('bash', [BUILD_SCRIPT, ...(what ? [what] : [])], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (result.status !== 0)
      throw new Error(`test/controlplane/build.sh ${what} failed (exit ${result.status})`);
    dir = result.stdout.trim().split('\n').pop()!;
    built.set(what, dir);
  }
  return dir;
}

export const controlPlaneBinaries = (minor?: string) => builtBinaries(minor);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function kubeConfig(url: string, ca: string, user: string, client: KeyPair): KubeConfig {
  const kc = new KubeConfig();
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: url, caData: b64(ca), skipTLSVerify: false }],
    users: [{ name: user, certData: b64(client.certPem), keyData: b64(client.keyPem) }],
    contexts: [{ name: user, cluster: 'test', user }],
    currentContext: user,
  });
  return kc;
}

const running = new Set<ChildProcess>();
// Whatever happens to the test, no etcd or apiserver outlives it.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A child process and the last lines of what it printed (for the error when it fails). */
export interface Started {
  child: ChildProcess;
  log: string[];
}

export function startProcess(binary: string, args: string[], env: Record<string, string> = {}): Started {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  running.add(child);
  child.on('exit', () => running.delete(child));
  const log: string[] = [];
  const keep = (chunk: Buffer) => {
    log.push(chunk.toString());
    if (log.length > 200) log.shift();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, log };
}

/** Resolves when the process prints a line matching `pattern`; fails if it exits first. */
export function waitForLine(
  { child, log }: Started,
  pattern: RegExp,
  what: string,
  timeoutMs = 60_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      if (!pattern.test(chunk.toString())) return;
      done();
      resolve();
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`${what} exited with ${code}:\n${log.slice(-20).join('')}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what} did not say ${pattern} in ${timeoutMs} ms:\n${log.slice(-20).join('')}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
    };
    if (log.some((line) => pattern.test(line))) return (done(), resolve());
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  child: ChildProcess,
  log: string[],
  timeoutMs = 90_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited with ${child.exitCode}:\n${log.slice(-20).join('')}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} was not ready in ${timeoutMs} ms:\n${log.slice(-20).join('')}`);
}

export async function stopChild(child: ChildProcess) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** A control plane of the newest supported Kubernetes minor, or of `minor` (`v1.35`). */
export async function startControlPlane(minor?: string): Promise<ControlPlane> {
  const bin = controlPlaneBinaries(minor);
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-cp-'));
  const ca = generateCa('kata-admission test cluster CA');
  const serving = generateServingCert(
    ca,
    ['localhost', 'kubernetes', 'kubernetes.default.svc'],
    ['127.0.0.1'],
  );
  const admin = generateClientCert(ca, 'test-admin', ['system:masters']);
  const executorUser = 'sd-executor';
  const executor = generateClientCert(ca, executorUser, ['screwdriver']);
  const saKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const files = {
    ca: join(dir, 'ca.crt'),
    cert: join(dir, 'apiserver.crt'),
    key: join(dir, 'apiserver.key'),
    saPub: join(dir, 'sa.pub'),
    saKey: join(dir, 'sa.key'),
  };
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.cert, serving.certPem);
  writeFileSync(files.key, serving.keyPem, { mode: 0o600 });
  writeFileSync(files.saPub, saKey.publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(files.saKey, saKey.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });

  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcd = startProcess(join(bin, 'etcd'), [
    '--data-dir',
    join(dir, 'etcd'),
    '--listen-client-urls',
    `http://127.0.0.1:${etcdClient}`,
    '--advertise-client-urls',
    `http://127.0.0.1:${etcdClient}`,
    '--listen-peer-urls',
    `http://127.0.0.1:${etcdPeer}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${etcdPeer}`,
    '--initial-cluster',
    `default=http://127.0.0.1:${etcdPeer}`,
    '--unsafe-no-fsync',
    '--log-level',
    'error',
  ]);
  let apiserver: Started | undefined;
  const stop = async () => {
    if (apiserver) await stopChild(apiserver.child);
    await stopChild(etcd.child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'etcd',
      async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok,
      etcd.child,
      etcd.log,
    );
    apiserver = startProcess(join(bin, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${files.cert}`,
      `--tls-private-key-file=${files.key}`,
      `--client-ca-file=${files.ca}`,
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-cluster-ip-range=10.96.0.0/24',
      '--authorization-mode=RBAC',
      // Build pods run privileged dind sidecars; the API server refuses privileged without this.
      '--allow-privileged=true',
      `--cert-dir=${join(dir, 'certs')}`,
      '--v=0',
    ]);
    const url = `https://127.0.0.1:${apiPort}`;
    const adminConfig = kubeConfig(url, ca.certPem, 'test-admin', admin);
    await waitFor(
      'kube-apiserver',
      async () => {
        const opts: Record<string, unknown> = {};
        await adminConfig.applyToHTTPSOptions(opts);
        const { request } = await import('node:https');
        return new Promise<boolean>((resolve) => {
          const req = request(`${url}/readyz`, { ...opts, method: 'GET' }, (res) => {
            res.resume();
            resolve(res.statusCode === 200);
          });
          req.on('error', () => resolve(false));
          req.end();
        });
      },
      apiserver.child,
      apiserver.log,
    );
    return {
      url,
      bin,
      caFile: files.ca,
      admin: adminConfig,
      executor: kubeConfig(url, ca.certPem, executorUser, executor),
      executorUser,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
