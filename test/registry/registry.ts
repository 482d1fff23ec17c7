// A real OCI registry (Debian's docker-registry, the CNCF distribution registry) on loopback,
// with images pushed through its HTTP API, optionally behind TLS, htpasswd or token auth.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createSign, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { stringify } from 'yaml';
import { generateCa, generateServingCert } from '../../src/tls/certs.js';
import { freePort } from '../cluster/controlplane.js';

export interface Registry {
  host: string;
  /** CA of the registry's TLS certificate, when it serves TLS. */
  caPem?: string;
  /** Request URIs the registry logged, in order. */
  requests: string[];
  /** The token service's realm, with token auth: on another port, so its credentials need naming. */
  tokenRealm?: string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export type RegistryAuth =
  { htpasswd: { username: string; password: string } } | { token: { username: string; password: string } };

export async function startRegistry(
  storage: string,
  options: { tls?: boolean; auth?: RegistryAuth } = {},
): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const http: Record<string, unknown> = { addr: host, secret: 'kata-admission-test' };
  let caPem: string | undefined;
  if (options.tls) {
    const ca = generateCa('test registry CA');
    const serving = generateServingCert(ca, ['localhost'], ['127.0.0.1']);
    writeFileSync(join(dir, 'tls.crt'), serving.certPem);
    writeFileSync(join(dir, 'tls.key'), serving.keyPem);
    http.tls = { certificate: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
    caPem = ca.certPem;
  }
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'info', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true } },
    http,
  };
  let tokenServer: Server | undefined;
  let tokenRealm: string | undefined;
  if (options.auth && 'htpasswd' in options.auth) {
    const { username, password } = options.auth.htpasswd;
    const line = spawnSync('htpasswd', ['-Bbn', username, password], { encoding: 'utf8' });
    if (line.status !== 0) throw new Error(`htpasswd failed: ${line.stderr}`);
    writeFileSync(join(dir, 'htpasswd'), line.stdout);
    config.auth = { htpasswd: { realm: 'kata-admission-test', path: join(dir, 'htpasswd') } };
  } else if (options.auth && 'token' in options.auth) {
    const token = await startTokenServer(options.auth.token);
    tokenServer = token.server;
    tokenRealm = token.realm;
    writeFileSync(join(dir, 'token-ca.pem'), token.certPem);
    config.auth = {
      token: {
        realm: token.realm,
        service: 'test-registry',
        issuer: 'kata-admission-test',
        rootcertbundle: join(dir, 'token-ca.pem'),
      },
    };
  }
  writeFileSync(join(dir, 'config.yml'), stringify(config));

  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  const requests: string[] = [];
  const log: string[] = [];
  let partial = '';
  const read = (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      log.push(line);
      // distribution logs every response with the request's URI.
      // distribution (logrus) logs every response with its URI, quoted only when it must be.
      const uri = /http\.request\.uri=(?:"([^"]+)"|(\S+))/.exec(line);
      if (uri && /response completed/.test(line)) requests.push(uri[1] ?? uri[2]!);
    }
  };
  child.stdout!.on('data', read);
  child.stderr!.on('data', read);
  const dispatcher = caPem ? new Agent({ connect: { ca: caPem } }) : undefined;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${log.slice(-10).join('\n')}`);
    try {
      await fetch(`${caPem ? 'https' : 'http'}://${host}/v2/`, dispatcher ? { dispatcher } : {});
      break;
    } catch {
      if (Date.now() > deadline)
        throw new Error(`docker-registry did not start: ${log.slice(-10).join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    host,
    ...(caPem && { caPem }),
    ...(tokenRealm && { tokenRealm }),
    requests,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      tokenServer?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A token server as the distribution spec describes: JWTs signed by a key the registry trusts. */
async function startTokenServer(user: { username: string; password: string }) {
  const ca = generateCa('test token issuer');
  const der = new X509Certificate(ca.certPem).raw.toString('base64');
  const b64url = (v: object | Buffer) =>
    Buffer.from(v instanceof Buffer ? v : JSON.stringify(v)).toString('base64url');
  const expected = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
  const server = createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      res.writeHead(401).end();
      return;
    }
    const url = new URL(req.url!, 'http://x');
    const [, name, actions] = (url.searchParams.get('scope') ?? '').split(':');
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [der] };
    const claims = {
      iss: 'kata-admission-test',
      sub: user.username,
      aud: url.searchParams.get('service'),
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 16),
      access: [{ type: 'repository', name, actions: (actions ?? '').split(',') }],
    };
    const unsigned = `${b64url(header)}.${b64url(claims)}`;
    const signature = createSign('RSA-SHA256').update(unsigned).sign(ca.keyPem);
    res
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(JSON.stringify({ token: `${unsigned}.${signature.toString('base64url')}`, expires_in: 300 }));
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { server, certPem: ca.certPem, realm: `http://127.0.0.1:${port}/token` };
}

// --- pushing images through the registry HTTP API ---------------------------------------------

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function pushBlob(base: string, repo: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha(data);
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`blob upload start: ${start.status}`);
  const location = new URL(start.headers.get('location')!, base);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    body: data,
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
  return { digest, size: data.length };
}

async function pushManifest(
  base: string,
  repo: string,
  reference: string,
  mediaType: string,
  manifest: object,
): Promise<{ digest: string; size: number }> {
  const body = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${base}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    body,
    headers: { 'Content-Type': mediaType },
  });
  if (res.status !== 201) throw new Error(`manifest ${repo}:${reference}: ${res.status} ${await res.text()}`);
  return { digest: sha(body), size: body.length };
}

export interface TestImageConfig {
  architecture: string;
  variant?: string;
  labels?: Record<string, string> | null;
  history?: string[];
}

/** Pushes one single-platform OCI image; returns its manifest's digest and size. */
export async function pushImage(base: string, repo: string, tag: string | undefined, image: TestImageConfig) {
  const layer = await pushBlob(base, repo, Buffer.from(`layer of ${repo} ${image.architecture}`));
  const config = await pushBlob(
    base,
    repo,
    Buffer.from(
      JSON.stringify({
        architecture: image.architecture,
        os: 'linux',
        ...(image.variant && { variant: image.variant }),
        config: { Labels: image.labels === undefined ? {} : image.labels, Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
        history: (image.history ?? ['/bin/sh -c #(nop) ADD file:0123 in /']).map((created_by) => ({
          created_by,
        })),
      }),
    ),
  );
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = await pushManifest(
    base,
    repo,
    tag ?? sha(Buffer.from(repo + image.architecture + (image.variant ?? ''))).slice(7, 20),
    mediaType,
    {
      schemaVersion: 2,
      mediaType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    },
  );
  return {
    ...manifest,
    mediaType,
    platform: {
      os: 'linux',
      architecture: image.architecture,
      ...(image.variant && { variant: image.variant }),
    },
  };
}

/** Pushes an image index over several platforms. */
export async function pushIndex(base: string, repo: string, tag: string, images: TestImageConfig[]) {
  const children = [];
  for (const image of images) children.push(await pushImage(base, repo, undefined, image));
  const mediaType = 'application/vnd.oci.image.index.v1+json';
  return pushManifest(base, repo, tag, mediaType, {
    schemaVersion: 2,
    mediaType,
    manifests: children.map((c) => ({
      mediaType: c.mediaType,
      digest: c.digest,
      size: c.size,
      platform: c.platform,
    })),
  });
}

/** The test images of the issue, pushed into `storage` through a plain registry run for the purpose. */
export async function seedImages(storage: string): Promise<void> {
  mkdirSync(storage, { recursive: true });
  const plain = await startRegistry(storage);
  const base = `http://${plain.host}`;
  try {
    await pushImage(base, 'ci/amd64', 'v1', {
      architecture: 'amd64',
      history: ['/bin/sh -c apt-get install -y build-essential'],
    });
    await pushImage(base, 'ci/i386', 'v1', { architecture: '386' });
    await pushIndex(base, 'ci/armv7', 'v1', [{ architecture: 'arm', variant: 'v7' }]);
    await pushIndex(base, 'ci/multi', 'v1', [
      { architecture: 'amd64' },
      { architecture: 'arm64', variant: 'v8' },
      { architecture: '386' },
    ]);
    await pushIndex(base, 'ci/old32', 'v1', [
      { architecture: '386' },
      { architecture: 'arm', variant: 'v6' },
    ]);
    await pushImage(base, 'ci/legacybase', 'v1', {
      architecture: 'amd64',
      labels: { 'org.opencontainers.image.base.name': 'docker.io/library/centos:6' },
    });
    await pushImage(base, 'ci/yum-history', 'v1', {
      architecture: 'amd64',
      history: ['/bin/sh -c yum install -y centos-release-6-10.el6.centos.12.3'],
    });
    await pushImage(base, 'ci/nolabels', 'v1', { architecture: 'amd64', labels: null });
  } finally {
    await plain.stop();
  }
}
