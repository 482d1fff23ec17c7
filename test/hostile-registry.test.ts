// A submitter chooses the registry an image names: each attack of the docs/security.md
// against a hostile registry the test runs itself, next to a real one (Debian's docker-registry)
// holding the victim's image. What must hold: no verdict from unverified bytes, bounded memory and
// time, admissions answered while the attack runs, and nothing contacted that the config does not name.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { NO_CONTENT_EVENTS } from '../src/images/content/checks.js';
import { ContentScanner } from '../src/images/content/scanner.js';
import { MemoryVerdictStore, storeTimes } from '../src/images/content/store.js';
import { createInspector, endpointsFor, inspectorFor } from '../src/images/inspector.js';
import { parseReference } from '../src/images/reference.js';
import { RegistryClient } from '../src/images/registry.js';
import { createLogger } from '../src/observability/logger.js';
import { generateCa, generateServingCert } from '../src/tls/certs.js';
import { startWebhook } from '../src/server/webhook.js';
import { fixture, policyFrom, withPod } from './helpers.js';
import { httpsRequest } from './https.js';
import { parsePrometheus } from './prometheus.js';
import {
  manifestOf,
  serveImage,
  sha256,
  startHostile,
  tarEntries,
  type Hostile,
} from './registry/hostile.js';
import { elfBinaries, gzipLayer, pushLayers } from './registry/layers.js';
import { startRegistry, type Registry } from './registry/registry.js';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
/** The Deployment's memory limit (deploy/deployment.yaml): every attack stays well under it. */
const MEMORY_LIMIT = 384 * 1024 * 1024;

function config(registries: Record<string, object>, content: Record<string, unknown> = {}, extra = {}) {
  return policyFrom(
    `imageInspection: ${JSON.stringify({
      enabled: true,
      registries,
      classRoutes: { '32-bit': 'legacy' },
      content: { enabled: true, ...content },
      ...extra,
    })}\n`,
  ).config.imageInspection;
}

function scannerFor(inspection: ReturnType<typeof config>, mismatches: string[] = []) {
  return new ContentScanner(new RegistryClient(endpointsFor(inspection)), inspection.content, {
    layerCache: () => {},
    bytes: () => {},
    mismatch: () => mismatches.push('mismatch'),
  });
}

/** The first bytes of a genuine i386 executable: an ELF header the scanner classifies. */
const elf32Head = () => elfBinaries().i386.subarray(0, 64);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** The heap in use once garbage is collected: what the process keeps. */
const liveHeap = () => (gc(), process.memoryUsage().heapUsed);

describe('a hostile registry', () => {
  let storage: string;
  let registry: Registry;
  let hostile: Hostile;
  let victim: { digest: string; manifest: Buffer; layer: Buffer };

  before(async () => {
    storage = mkdtempSync(join(tmpdir(), 'kata-admission-hostile-'));
    registry = await startRegistry(storage);
    const layer = gzipLayer({ 'usr/bin/tool': elfBinaries().amd64 });
    const digest = await pushLayers(`http://${registry.host}`, 'team/app', 'v1', [layer]);
    const res = await fetch(`http://${registry.host}/v2/team/app/manifests/${digest}`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    victim = { digest, manifest: Buffer.from(await res.arrayBuffer()), layer: layer.data };
    hostile = await startHostile();
  });
  after(async () => {
    await hostile.close();
    await registry.stop();
    rmSync(storage, { recursive: true, force: true });
  });

  const registries = () => ({ [registry.host]: { insecure: true }, [hostile.host]: { insecure: true } });

  it("cannot plant a verdict under another team's manifest digest", async () => {
    const evil = await tarEntries([{ name: 'bin/evil', data: elf32Head() }]);
    const image = manifestOf([{ data: gzipSync(evil), mediaType: GZIP }]);
    // Its own 32-bit image, served under the victim's digest, with a header that claims it.
    serveImage(
      hostile,
      'x/poison',
      { ...image, layers: [gzipSync(evil)] },
      { manifestDigest: victim.digest },
    );
    const policy = config(registries());
    const store = new MemoryVerdictStore(storeTimes(policy.content));
    const mismatches: string[] = [];
    const inspector = inspectorFor(policy, undefined, {
      store,
      events: { ...NO_CONTENT_EVENTS, mismatch: () => mismatches.push('x') },
    })!;
    await inspector.inspect([`${hostile.host}/x/poison@${victim.digest}`]);
    await inspector.content!.idle();
    const planted = store.get(victim.digest)!;
    assert.equal(planted.phase, 'Failed');
    assert.equal(planted.verdict!.class, 'unknown');
    assert.match(planted.verdict!.detail, /hash to sha256:[0-9a-f]{64}, not sha256:/);
    assert.deepEqual(mismatches, ['x']);
  });

  it("cannot plant 32-bit content under another team's layer digest", async () => {
    const mismatches: string[] = [];
    const scanner = scannerFor(config(registries()), mismatches);
    const layerDigest = JSON.parse(victim.manifest.toString()).layers[0].digest as string;
    // The victim's own manifest (its digest checks out), with 32-bit bytes for its layer.
    hostile.route(`/v2/x/copy/manifests/${victim.digest}`, (_req, res) => res.end(victim.manifest));
    hostile.route(`/v2/x/copy/blobs/${layerDigest}`, async (_req, res) =>
      res.end(gzipSync(await tarEntries([{ name: 'usr/bin/tool', data: elf32Head() }]))),
    );
    const poisoned = await scanner.scan(parseReference(`${hostile.host}/x/copy@${victim.digest}`)!);
    assert.equal(poisoned.outcome, 'failed');
    assert.match(poisoned.detail, /layer sha256:.*(hash to|more than the)/);
    assert.deepEqual(mismatches, ['mismatch']);
    // Nothing was cached under the victim's layer: the same scanner reads the real one and finds it ok.
    const real = await scanner.scan(parseReference(`${registry.host}/team/app@${victim.digest}`)!);
    assert.equal(real.class, 'ok', real.detail);
  });

  it('is capped as it streams: a chunked manifest with no length is cut at 4 MiB', async () => {
    hostile.route('/v2/x/huge/manifests/v1', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      let sent = 0;
      const more = () => {
        while (sent < 256 * 1024 * 1024 && !res.destroyed) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('close', () => (sent = Infinity));
      more();
    });
    const before = hostile.written.bytes;
    const verdict = (await createInspector(config(registries())).inspect([`${hostile.host}/x/huge:v1`])).get(
      `${hostile.host}/x/huge:v1`,
    )!;
    assert.equal(verdict.class, 'unknown');
    assert.match(verdict.detail, /over the 4194304 byte limit/);
    assert.ok(
      hostile.written.bytes - before < 32 * 1024 * 1024,
      `${hostile.written.bytes - before} bytes sent`,
    );
  });

  it('redirects only to the registry or a configured blob host, and never with credentials', async () => {
    const storageHost = await startHostile('127.0.0.2');
    try {
      const data = gzipSync(await tarEntries([{ name: 'etc/hostname', data: Buffer.from('x\n') }]));
      const image = manifestOf([{ data, mediaType: GZIP }]);
      serveImage(hostile, 'x/redirect', { ...image, layers: [data] }, { tag: 'v1' });
      const layer = JSON.parse(image.manifest.toString()).layers[0].digest as string;
      hostile.route(`/v2/x/redirect/blobs/${layer}`, (_req, res) =>
        res.writeHead(307, { Location: `http://${storageHost.host}/blob` }).end(),
      );
      storageHost.route('/blob', (_req, res) => res.end(data));
      const dir = mkdtempSync(join(tmpdir(), 'kata-admission-creds-'));
      const secret = join(dir, 'config.json');
      writeFileSync(secret, JSON.stringify({ auths: { [hostile.host]: { username: 'u', password: 'p' } } }));
      const refused = await scannerFor(config(registries())).scan(
        parseReference(`${hostile.host}/x/redirect:v1`)!,
      );
      assert.equal(refused.outcome, 'failed');
      assert.match(
        refused.detail,
        /redirected to http:\/\/127\.0\.0\.2:\d+, which is not the registry nor one of its blobHosts/,
      );
      assert.equal(storageHost.requests.length, 0);
      const allowed = config({
        [hostile.host]: { insecure: true, dockerConfigJson: secret, blobHosts: [storageHost.host] },
      });
      const followed = await scannerFor(allowed).scan(parseReference(`${hostile.host}/x/redirect:v1`)!);
      assert.equal(followed.class, 'ok', followed.detail);
      assert.deepEqual(
        storageHost.requests,
        [{ path: '/blob' }],
        'followed, without the Authorization header',
      );
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await storageHost.close();
    }
  });

  it('sends credentials only to an https realm of its own host or one the config names', async () => {
    const realm = await startHostile('127.0.0.3');
    try {
      realm.route('/token', (_req, res) => res.end(JSON.stringify({ token: 't' })));
      hostile.route('/v2/x/private/manifests/v1', (req, res) => {
        if (req.headers.authorization === 'Bearer t') return void res.writeHead(404).end();
        res
          .writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${realm.host}/token",service="r"` })
          .end();
      });
      const dir = mkdtempSync(join(tmpdir(), 'kata-admission-creds-'));
      const secret = join(dir, 'config.json');
      writeFileSync(
        secret,
        JSON.stringify({ auths: { [hostile.host]: { username: 'u', password: 'secret' } } }),
      );
      const ref = `${hostile.host}/x/private:v1`;
      await createInspector(config({ [hostile.host]: { insecure: true, dockerConfigJson: secret } })).inspect(
        [ref],
      );
      assert.ok(realm.requests.length > 0, 'an anonymous token was asked for');
      assert.ok(
        realm.requests.every((r) => !r.authorization),
        'the password never left for a realm on another host',
      );
      // A registry not configured insecure: a plain http realm is refused outright.
      const ca = generateCa('hostile CA');
      const serving = generateServingCert(ca, ['localhost'], ['127.0.0.1']);
      const { createServer } = await import('node:https');
      const tls = createServer({ cert: serving.certPem, key: serving.keyPem }, (_req, res) =>
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${realm.host}/token"` }).end(),
      );
      await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
      const tlsHost = `127.0.0.1:${(tls.address() as { port: number }).port}`;
      writeFileSync(join(dir, 'ca.pem'), ca.certPem);
      const before = realm.requests.length;
      const verdict = (
        await createInspector(
          config({ [tlsHost]: { caFile: join(dir, 'ca.pem'), dockerConfigJson: secret } }),
        ).inspect([`${tlsHost}/x/private:v1`])
      ).get(`${tlsHost}/x/private:v1`)!;
      assert.match(verdict.detail, /bearer realm http:\/\/127\.0\.0\.3:\d+ is not https/);
      assert.equal(realm.requests.length, before);
      tls.close();
      rmSync(dir, { recursive: true, force: true });
    } finally {
      await realm.close();
    }
  });

  it('stops a layer bomb: past its declared size, and past maxUnpackedBytes', async () => {
    const zeros = gzipSync(await tarEntries([{ name: 'zeros', data: Buffer.alloc(128 * 1024 * 1024) }]));
    const lying = manifestOf([{ data: zeros, mediaType: GZIP, size: 100 }]);
    serveImage(hostile, 'x/bomb', { ...lying, layers: [zeros] }, { tag: 'lying' });
    const declared = await scannerFor(config(registries())).scan(
      parseReference(`${hostile.host}/x/bomb:lying`)!,
    );
    assert.equal(declared.outcome, 'failed');
    assert.match(declared.detail, /more than the 100 bytes its descriptor declares/);
    assert.ok(declared.bytes < 128 * 1024, `${declared.bytes} bytes read`);
    const honest = manifestOf([{ data: zeros, mediaType: GZIP }]);
    serveImage(hostile, 'x/bomb', { ...honest, layers: [zeros] }, { tag: 'honest' });
    const unpacked = await scannerFor(config(registries(), { maxUnpackedBytes: 64 * 1024 * 1024 })).scan(
      parseReference(`${hostile.host}/x/bomb:honest`)!,
    );
    assert.equal(unpacked.outcome, 'stopped');
    assert.match(unpacked.detail, /maxUnpackedBytes 67108864/);
  });

  it('stops at a path longer than 4096 bytes, keeping none of it', async () => {
    const long = await tarEntries(
      // pax records carry the paths (tar-stream would take minutes to split such names itself).
      Array.from({ length: 80 }, (_, i) => ({
        name: `f${i}`,
        pax: { path: `${'d/'.repeat(400_000)}${i}` },
        data: elf32Head(),
      })),
    );
    const data = gzipSync(long);
    const image = manifestOf([{ data, mediaType: GZIP }]);
    serveImage(hostile, 'x/long', { ...image, layers: [data] }, { tag: 'v1' });
    const verdict = await scannerFor(config(registries())).scan(parseReference(`${hostile.host}/x/long:v1`)!);
    assert.equal(verdict.outcome, 'stopped');
    assert.match(verdict.detail, /a path longer than 4096 bytes/);
    assert.ok(liveHeap() < MEMORY_LIMIT / 2, `heap ${liveHeap()}`);
  });

  it('never contacts an unnamed registry by default, and bounds what it keeps when told to', async () => {
    const ref = `${hostile.host}/x/anything:v1`;
    const before = hostile.requests.length;
    const skipped = (await createInspector(config({})).inspect([ref])).get(ref)!;
    assert.match(skipped.detail, /not in imageInspection.registries \(otherRegistries: skip\)/);
    assert.equal(hostile.requests.length, before);
    // 40,000 distinct hosts (connections refused at once): the metric knows them only as "other".
    const labels = new Set<string>();
    const inspector = createInspector(config({}, {}, { otherRegistries: 'inspect', timeoutMs: 25_000 }), {
      cache: () => {},
      lookup: (registry) => labels.add(registry),
      registryRequest: (registry) => labels.add(registry),
    });
    // Bounded: the negative cache keeps maxEntries images; breakers, endpoints (their pools closed
    // when evicted) and tokens a few hundred each; kept per host, they would grow with every one.
    const heap = liveHeap();
    for (let batch = 0; batch < 40; batch++)
      await inspector.inspect(
        Array.from({ length: 1000 }, (_, i) => `127.${batch + 1}.${Math.floor(i / 250)}.${i % 250}:1/x/y:v1`),
      );
    assert.deepEqual([...labels], ['other']);
    const kept = liveHeap() - heap;
    assert.ok(kept < 64 * 1024 * 1024, `${kept} bytes kept for 40,000 hosts`);
  });

  it('keeps a dry run from scanning, and a submitter within its scanRate', async () => {
    const policy = config(registries(), { scanRate: { perUser: { burst: 2, perHour: 1 } } });
    const store = new MemoryVerdictStore(storeTimes(policy.content));
    const limited: string[] = [];
    const inspector = inspectorFor(policy, undefined, {
      store,
      events: { ...NO_CONTENT_EVENTS, limited: (by) => limited.push(by) },
    })!;
    const digests = ['a', 'b', 'c'].map((c) => `sha256:${c.repeat(64)}`);
    const refs = digests.map((d) => `${registry.host}/team/none@${d}`);
    const requester = { user: 'mallory', namespace: 'sd-build-namespace', dryRun: true };
    await inspector.inspect(refs, requester);
    await inspector.content!.idle();
    assert.equal(store.size(), 0, 'a dry run claims, scans and writes nothing');
    await inspector.inspect(refs, { ...requester, dryRun: false });
    await inspector.content!.idle();
    assert.equal(store.size(), 2);
    assert.deepEqual(limited, ['user']);
    // What failed is retried later and later, and forgotten soon; nothing an operator wrote is.
    const failed = store.get(digests[0]!)!;
    assert.equal(failed.phase, 'Failed');
    assert.equal(failed.attempts, 1);
    const collected = await store.collect(Date.now() + policy.content.failedForgetAfterSeconds * 1000 + 1);
    assert.equal(collected, 2);
  });
});

describe('scans under attack', () => {
  let hostile: Hostile;
  before(async () => (hostile = await startHostile()));
  after(() => hostile.close());

  it('answers admissions within 1 s, in bounded memory, while every attack image is read', async () => {
    const serve = (repo: string, layers: Buffer[], options: { sizes?: number[]; digest?: string } = {}) => {
      const image = manifestOf(
        layers.map((data, i) => ({ data, mediaType: GZIP, size: options.sizes?.[i] })),
      );
      serveImage(
        hostile,
        repo,
        { ...image, layers },
        { tag: 'v1', ...(options.digest && { manifestDigest: options.digest }) },
      );
      return image.digest;
    };
    const wide = serve('x/wide', [
      gzipSync(
        await tarEntries(
          Array.from({ length: 9000 }, (_, i) => ({ name: `opt/${i % 90}/sub/${i}/bin`, data: elf32Head() })),
        ),
      ),
      gzipSync(
        await tarEntries(
          Array.from({ length: 90_000 }, (_, i) => ({ name: `var/${i % 300}/.wh.gone-${i}` })),
        ),
      ),
    ]);
    const zeros = gzipSync(await tarEntries([{ name: 'zeros', data: Buffer.alloc(128 * 1024 * 1024) }]));
    serve('x/bomb', [zeros]);
    serve('x/lying', [zeros], { sizes: [100] });
    serve('x/long', [
      gzipSync(
        await tarEntries(
          Array.from({ length: 80 }, (_, i) => ({
            name: `f${i}`,
            pax: { path: `${'d/'.repeat(400_000)}${i}` },
            data: elf32Head(),
          })),
        ),
      ),
    ]);
    serve('x/poison', [zeros], { digest: `sha256:${'c'.repeat(64)}` });
    hostile.route('/v2/x/endless/manifests/v1', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const more = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
    });
    const attacks = ['wide', 'bomb', 'lying', 'long', 'poison', 'endless'].map(
      (r) => `${hostile.host}/x/${r}:v1`,
    );
    const dir = mkdtempSync(join(tmpdir(), 'kata-admission-attack-'));
    const configPath = join(dir, 'config.yaml');
    writeFileSync(
      configPath,
      `imageInspection: ${JSON.stringify({
        enabled: true,
        registries: { [hostile.host]: { insecure: true } },
        content: { enabled: true, maxUnpackedBytes: 64 * 1024 * 1024 },
      })}\n`,
    );
    const webhook = await startWebhook({
      configPath,
      port: 0,
      host: '127.0.0.1',
      devCertsDir: join(dir, 'certs'),
      logger: createLogger('error'),
    });
    try {
      const ca = (await import('node:fs')).readFileSync(webhook.devCaFile!, 'utf8');
      const buildOf = (image: string) =>
        JSON.stringify(
          withPod(fixture('build-plain'), (pod) => void (pod.spec!.containers[0]!.image = image)),
        );
      const send = (image: string) => httpsRequest(webhook.port, ca, { body: buildOf(image) });
      // Each attack image once (its digest is learned and its scan queued), then timed admissions until every scan is done.
      for (const image of attacks) assert.equal((await send(image)).status, 200);
      let scanning = true;
      const scanned = webhook
        .content()!
        .idle()
        .then(() => (scanning = false));
      let slowest = 0;
      let answered = 0;
      let peak = 0;
      while (scanning) {
        const started = performance.now();
        const answer = await send(attacks[answered % attacks.length]!);
        assert.equal(answer.status, 200);
        slowest = Math.max(slowest, performance.now() - started);
        peak = Math.max(peak, process.memoryUsage().heapUsed);
        answered++;
      }
      await scanned;
      const store = webhook.content()!.store;
      assert.equal(store.get(wide)!.verdict!.class, '32-bit', store.get(wide)!.verdict!.detail);
      assert.ok(answered > 1, `${answered} admissions answered during the scans`);
      assert.ok(slowest < 1000, `the slowest admission during the scans took ${Math.round(slowest)} ms`);
      assert.ok(peak < MEMORY_LIMIT / 2, `heap peaked at ${peak} bytes`);
      const metrics = parsePrometheus(
        (await httpsRequest(webhook.port, ca, { path: '/metrics', method: 'GET' })).body,
      );
      const mismatches = metrics.find((m) => m.name === 'kata_admission_content_digest_mismatch_total')!;
      assert.ok(mismatches.value >= 2, 'the lying layer and the poisoned manifest are counted');
      assert.equal(
        store.get(`sha256:${'c'.repeat(64)}`),
        undefined,
        'nothing stored under the claimed digest',
      );
    } finally {
      await webhook.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lets no slow registry hold every scan worker', async () => {
    const trickle = await startHostile('127.0.0.4');
    const fast = await startHostile('127.0.0.5');
    try {
      const layerOf = async (repo: string) =>
        gzipSync(await tarEntries([{ name: 'etc/hostname', data: Buffer.from(`${repo}\n`) }]));
      const stalls: (() => void)[] = [];
      let released = false;
      const digests: Record<string, string> = {};
      for (const [server, repo] of [
        [trickle, 'slow/a'],
        [trickle, 'slow/b'],
        [fast, 'quick/c'],
      ] as const) {
        const data = await layerOf(repo);
        const image = manifestOf([{ data, mediaType: GZIP }]);
        digests[repo] = image.digest;
        serveImage(server, repo, { ...image, layers: [data] }, { tag: 'v1' });
        if (server === trickle)
          server.route(`/v2/${repo}/blobs/${sha256(data)}`, (_req, res) => {
            if (released) return res.end(data);
            res.writeHead(200, { 'Content-Length': data.length });
            res.write(data.subarray(0, 1)); // one byte, then nothing until the test ends
            stalls.push(() => res.destroy());
          });
      }
      const policy = config(
        { [trickle.host]: { insecure: true }, [fast.host]: { insecure: true } },
        { workers: 2 },
      );
      const store = new MemoryVerdictStore(storeTimes(policy.content));
      let quickScanned!: () => void;
      const quick = new Promise<void>((resolve) => (quickScanned = resolve));
      const inspector = inspectorFor(policy, undefined, {
        store,
        events: {
          ...NO_CONTENT_EVENTS,
          scanned: (v) => void (v.digest === digests['quick/c'] && quickScanned()),
        },
      })!;
      const refs = [`${trickle.host}/slow/a:v1`, `${trickle.host}/slow/b:v1`, `${fast.host}/quick/c:v1`];
      await inspector.inspect(refs); // the digests
      await inspector.inspect(refs); // the scans, slow ones first
      await quick;
      assert.equal(store.get(digests['quick/c']!)?.phase, 'Scanned');
      const slow = ['slow/a', 'slow/b'].map((repo) => store.get(digests[repo]!)?.phase ?? 'waiting');
      assert.deepEqual(
        slow.sort(),
        ['Scanning', 'waiting'],
        'the slow registry holds one worker; its other scan waits',
      );
      released = true;
      for (const stall of stalls) stall();
      await inspector.content!.idle();
    } finally {
      await trickle.close();
      await fast.close();
    }
  });
});
