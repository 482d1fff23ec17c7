// Image content: real layers (gcc's i386 and amd64 executables, this machine's glibc, release files,
// whiteouts) archived by GNU tar, pushed to a real registry (Debian's docker-registry), and read by
// the scanner, the inspector, the CLI and `serve`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import fc from 'fast-check';
import { reviewAdmission } from '../src/admission/review.js';
import { run } from '../src/cli/main.js';
import { NO_CONTENT_EVENTS } from '../src/images/content/checks.js';
import { elf32Machine } from '../src/images/content/elf.js';
import { summarizeLayer } from '../src/images/content/layer.js';
import { applyLayers } from '../src/images/content/merge.js';
import { parseRelease } from '../src/images/content/release.js';
import { ContentScanner } from '../src/images/content/scanner.js';
import { MemoryVerdictStore, storeTimes } from '../src/images/content/store.js';
import { endpointsFor, inspectorFor } from '../src/images/inspector.js';
import { parseReference } from '../src/images/reference.js';
import { RegistryClient } from '../src/images/registry.js';
import {
  ANNOTATION,
  capturedIo,
  fixture,
  patchedPod,
  podFromResponse,
  policyFrom,
  withPod,
} from './helpers.js';
import { freePort } from './cluster/controlplane.js';
import { httpsRequest } from './https.js';
import { parsePrometheus } from './prometheus.js';
import {
  elfBinaries,
  gzipLayer,
  plainLayer,
  pushLayers,
  tarOf,
  zstdLayer,
  type FileSpec,
  type Layer,
} from './registry/layers.js';
import { startRegistry, type Registry } from './registry/registry.js';
import { serve } from './serve.js';

const SYSTEM_LIBC = readFileSync('/lib/x86_64-linux-gnu/libc.so.6');
const DEBIAN_OS_RELEASE =
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

function contentConfig(host: string, content: Record<string, unknown> = {}, extra = '') {
  return (
    `imageInspection: ${JSON.stringify({
      enabled: true,
      registries: { [host]: { insecure: true } },
      classRoutes: { '32-bit': 'legacy', 'legacy-glibc': 'legacy' },
      content: { enabled: true, ...content },
    })}\n` + extra
  );
}

const buildWith = (image: string) =>
  withPod(fixture('build-plain'), (pod) => {
    pod.spec!.containers[0]!.image = image;
  });

describe('content facts (pure parts)', () => {
  it('tells 32-bit x86 and ARM ELF headers from 64-bit ones and from non-ELF files', () => {
    const { i386, amd64 } = elfBinaries();
    assert.equal(elf32Machine(i386), 'i386');
    assert.equal(elf32Machine(amd64), undefined);
    assert.equal(elf32Machine(Buffer.from('#!/bin/sh\necho not an ELF file\n')), undefined);
    const arm = Buffer.alloc(52);
    arm.write('\x7fELF', 0, 'latin1');
    arm[4] = 1; // ELFCLASS32
    arm[5] = 1; // little endian
    arm.writeUInt16LE(40, 18); // EM_ARM
    assert.equal(elf32Machine(arm), 'arm');
    arm.writeUInt16LE(8, 18); // EM_MIPS: not a target Kata nodes run
    assert.equal(elf32Machine(arm), undefined);
  });

  it('reads distribution and version from every kind of release file', () => {
    assert.deepEqual(parseRelease('etc/redhat-release', 'CentOS release 6.10 (Final)\n'), {
      id: 'centos',
      version: '6.10',
      source: 'etc/redhat-release',
      name: 'CentOS release 6.10 (Final)',
    });
    assert.equal(
      parseRelease('etc/redhat-release', 'Red Hat Enterprise Linux Server release 6.9 (Santiago)')!.id,
      'rhel',
    );
    assert.equal(
      parseRelease('etc/system-release-cpe', 'cpe:/o:redhat:enterprise_linux:6server:ga:server')!.version,
      '6',
    );
    assert.equal(parseRelease('etc/os-release', DEBIAN_OS_RELEASE)!.id, 'debian');
    assert.equal(parseRelease('etc/os-release', 'NAME=nothing useful\n'), undefined);
  });

  it('never throws on arbitrary bytes as a layer: it answers or rejects with an Error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 4096 }),
        fc.constantFrom('gzip', 'zstd', 'none', 'gzip-of-bytes', 'zstd-of-bytes'),
        async (bytes, form) => {
          const raw = Buffer.from(bytes);
          const data =
            form === 'gzip-of-bytes' ? gzipSync(raw) : form === 'zstd-of-bytes' ? zstdCompressSync(raw) : raw;
          const compression = form.startsWith('gzip') ? 'gzip' : form.startsWith('zstd') ? 'zstd' : 'none';
          try {
            const summary = await summarizeLayer(Readable.from([data]), compression);
            assert.ok(Array.isArray(summary.elf32));
          } catch (error) {
            assert.ok(error instanceof Error, `rejected with ${String(error)}`);
          }
        },
      ),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
    );
  });

  it('never throws on a real layer cut short or with a byte changed, compressed or not', async (t) => {
    const { i386, amd64 } = elfBinaries();
    const tar = tarOf({
      'usr/bin/hello': amd64,
      'usr/lib32/hello': i386,
      'etc/os-release': DEBIAN_OS_RELEASE,
    });
    const forms = { none: tar, gzip: gzipSync(tar), zstd: zstdCompressSync(tar) } as const;
    // An error a stream emits with nobody listening would crash the webhook: catch it here to fail.
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', record);
    t.after(() => process.off('uncaughtException', record));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('none', 'gzip', 'zstd') as fc.Arbitrary<keyof typeof forms>,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.option(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 }))),
        fc.boolean(),
        async (form, cutAt, flip, connectionFails) => {
          const data = Buffer.from(forms[form].subarray(0, Math.floor(forms[form].length * cutAt)));
          if (flip && data.length > 0) data[Math.floor((data.length - 1) * flip[0])] = flip[1];
          try {
            // Cut short as a file ends, or as a connection fails (the source errors mid-stream).
            const source = connectionFails
              ? Readable.from(
                  (async function* () {
                    for (let i = 0; i < data.length; i += 4096) yield data.subarray(i, i + 4096);
                    await new Promise(setImmediate); // what was sent is parsed first
                    throw new Error('connection reset');
                  })(),
                )
              : Readable.from([data]);
            await summarizeLayer(source, form);
          } catch (error) {
            assert.ok(error instanceof Error, `rejected with ${String(error)}`);
          }
        },
      ),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 300) },
    );
    await new Promise(setImmediate);
    assert.deepEqual(uncaught, []);
  });
});

type Op =
  | { kind: 'file'; path: string; content: 'i386' | 'amd64' | 'text' }
  | { kind: 'whiteout'; path: string }
  | { kind: 'opaque'; dir: string };

const DIRS = ['a', 'a/b', 'c'];
const FILES = DIRS.flatMap((d) => [`${d}/x`, `${d}/y`]);

/** A layer's files for these operations, as Docker writes them: whiteouts and opaque markers as empty files. */
function layerFiles(ops: Op[]): Record<string, FileSpec> {
  const { i386, amd64 } = elfBinaries();
  const gone = ops.flatMap((op) => (op.kind === 'whiteout' ? [op.path] : []));
  const files: Record<string, FileSpec> = {};
  for (const op of ops) {
    if (op.kind === 'opaque') files[`${op.dir}/.wh..wh..opq`] = '';
    if (op.kind === 'whiteout') {
      const slash = op.path.lastIndexOf('/');
      files[`${op.path.slice(0, slash + 1)}.wh.${op.path.slice(slash + 1)}`] = '';
    }
    if (op.kind === 'file' && !gone.some((g) => op.path === g || op.path.startsWith(`${g}/`)))
      files[op.path] = op.content === 'i386' ? i386 : op.content === 'amd64' ? amd64 : 'plain text\n';
  }
  return files;
}

/** The reference: each layer applied to a folder with GNU tar, whiteouts removing what lower layers had. */
function applyWithGnuTar(layers: Buffer[]): string[] {
  const root = mkdtempSync(join(tmpdir(), 'kata-admission-rootfs-'));
  try {
    for (const layer of layers) {
      const names = execFileSync('tar', ['-tf', '-'], { input: layer })
        .toString()
        .split('\n')
        .filter(Boolean);
      for (const name of names.map((n) => n.replace(/^\.\//, ''))) {
        const slash = name.lastIndexOf('/');
        const base = name.slice(slash + 1);
        const dirPath = join(root, name.slice(0, slash + 1));
        if (base === '.wh..wh..opq')
          for (const entry of readdirSafe(dirPath))
            rmSync(join(dirPath, entry), { recursive: true, force: true });
        else if (base.startsWith('.wh.'))
          rmSync(join(dirPath, base.slice(4)), { recursive: true, force: true });
      }
      execFileSync('tar', ['-xf', '-', '-C', root, '--exclude=.wh.*'], { input: layer });
    }
    const found: string[] = [];
    const walk = (dir: string, prefix: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = `${prefix}${entry.name}`;
        if (entry.isDirectory()) walk(join(dir, entry.name), `${path}/`);
        else if (entry.isFile() && elf32Machine(readFileSync(join(dir, entry.name)).subarray(0, 20)))
          found.push(path);
      }
    };
    walk(root, '');
    return found.sort();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const readdirSafe = (dir: string) => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

describe('whiteouts (property, against GNU tar)', () => {
  it('the 32-bit files the scanner counts are those left after applying the layers with GNU tar', async () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('file' as const),
          path: fc.constantFrom(...FILES),
          content: fc.constantFrom('i386' as const, 'amd64' as const, 'text' as const),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('whiteout' as const),
          path: fc.constantFrom(...DIRS, ...FILES),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('opaque' as const), dir: fc.constantFrom(...DIRS) }),
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(op, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 4 }),
        async (stack) => {
          const layers = stack.map((ops) => tarOf(layerFiles(ops)));
          const summaries = [];
          for (const layer of layers) summaries.push(await summarizeLayer(Readable.from([layer]), 'none'));
          assert.deepEqual((await applyLayers(summaries, () => false)).elf32, applyWithGnuTar(layers));
        },
      ),
      { numRuns: Math.min(60, Math.ceil(Number(process.env.PROPERTY_RUNS ?? 300) / 5)) },
    );
  });
});

describe('content scanning against a real registry', () => {
  let registry: Registry;
  let base: string;
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-content-'));
  const images: Record<string, string> = {};
  const ref = (name: string) => `${registry.host}/ci/${name}:v1`;
  let debianBase: Layer;

  before(async () => {
    registry = await startRegistry(join(dir, 'storage'));
    base = `http://${registry.host}`;
    const { i386, amd64 } = elfBinaries();
    debianBase = gzipLayer({
      'etc/os-release': { symlink: '../usr/lib/os-release' },
      'usr/lib/os-release': DEBIAN_OS_RELEASE,
      'lib/x86_64-linux-gnu/libc.so.6': SYSTEM_LIBC,
      'usr/bin/hello': amd64,
    });
    const push = async (name: string, layers: Layer[]) =>
      (images[name] = await pushLayers(base, `ci/${name}`, 'v1', layers));
    await push('debian', [debianBase]);
    await push('debian-tools', [debianBase, gzipLayer({ 'usr/local/bin/tool': amd64 })]);
    await push('multilib', [
      debianBase,
      gzipLayer({ 'usr/lib32/libc.so.6': i386, 'usr/lib32/crt1': i386, 'opt/sdk/bin/aapt': i386 }),
    ]);
    await push('oldbase', [
      gzipLayer({
        'etc/redhat-release': 'CentOS release 6.10 (Final)\n',
        'etc/centos-release': 'CentOS release 6.10 (Final)\n',
        'lib64/libc-2.12.so': amd64,
        'lib64/libc.so.6': { symlink: 'libc-2.12.so' },
      }),
    ]);
    await push('app-server', [
      gzipLayer({ 'etc/redhat-release': 'CentOS release 6.10 (Final)\n', 'bin/sh': amd64 }),
      gzipLayer({ 'app/server': amd64 }),
    ]);
    await push('whiteout', [
      gzipLayer({ 'usr/lib32/old': i386, 'opt/sdk/bin/tool32': i386, 'usr/bin/hello': amd64 }),
      zstdLayer({ 'usr/lib32/.wh.old': '', 'opt/.wh.sdk': '' }),
    ]);
    await push('opaque', [
      gzipLayer({ 'opt/sdk/tool32': i386 }),
      plainLayer({ 'opt/sdk/.wh..wh..opq': '', 'opt/sdk/tool64': amd64 }),
    ]);
    await push('zstd-i386', [zstdLayer({ 'usr/bin/hello32': i386 })]);
    await push('firmware', [gzipLayer({ 'lib/firmware/blob32': i386, 'usr/bin/hello': amd64 })]);
    await push('big', [gzipLayer({ 'data/random': randomBytes(3 * 1024 * 1024) })]);
    await push('corrupt', [
      { data: randomBytes(4096), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
    ]);
  });
  after(() => registry.stop());

  function scanner(content: Record<string, unknown> = {}) {
    const policy = policyFrom(contentConfig(registry.host, content));
    const cache: string[] = [];
    const scanner = new ContentScanner(
      new RegistryClient(endpointsFor(policy.config.imageInspection)),
      policy.config.imageInspection.content,
      { layerCache: (r) => cache.push(r), bytes: () => {} },
    );
    return { scanner, cache, scan: (name: string) => scanner.scan(parseReference(ref(name))!) };
  }

  it('finds 32-bit ELF files inside an amd64 image, with evidence', async () => {
    const verdict = await scanner().scan('multilib');
    assert.equal(verdict.class, '32-bit');
    assert.equal(verdict.outcome, 'scanned');
    assert.equal(verdict.elf32Count, 3);
    assert.deepEqual(verdict.evidence, ['/opt/sdk/bin/aapt', '/usr/lib32/crt1', '/usr/lib32/libc.so.6']);
    assert.equal(verdict.detail, '/opt/sdk/bin/aapt, /usr/lib32/crt1, /usr/lib32/libc.so.6 32-bit ELF files');
    assert.equal(verdict.digest, images.multilib);
  });

  it('reads a Debian userland: the release through its symlink, glibc from the library itself', async () => {
    const verdict = await scanner().scan('debian');
    assert.equal(verdict.class, 'ok');
    assert.equal(verdict.os, 'debian 12');
    assert.match(verdict.glibc!, /^2\.\d+$/);
    assert.equal(verdict.detail, `debian 12, glibc ${verdict.glibc}, 0 32-bit ELF files`);
  });

  it('knows an EL6 userland by its glibc file name and by its release file alone', async () => {
    const el6 = await scanner().scan('oldbase');
    assert.equal(el6.class, 'legacy-glibc');
    assert.equal(el6.detail, 'glibc 2.12 (/lib64/libc-2.12.so)');
    const builtOn = await scanner().scan('app-server');
    assert.equal(builtOn.class, 'legacy-glibc');
    assert.equal(builtOn.detail, 'CentOS release 6.10 (Final) (/etc/redhat-release)');
  });

  it('applies whiteouts and opaque folders of later layers (zstd and plain tar layers too)', async () => {
    const { scan } = scanner();
    const whiteout = await scan('whiteout');
    assert.equal(whiteout.class, 'ok', whiteout.detail);
    assert.equal(whiteout.elf32Count, 0);
    assert.equal((await scan('opaque')).class, 'ok');
    const zstd = await scan('zstd-i386');
    assert.equal(zstd.class, '32-bit');
    assert.deepEqual(zstd.evidence, ['/usr/bin/hello32']);
  });

  it('ignores 32-bit files the ignore globs name', async () => {
    assert.equal((await scanner({ ignore: [] }).scan('firmware')).class, '32-bit');
    assert.equal((await scanner().scan('firmware')).class, 'ok', 'lib/firmware/** is ignored by default');
  });

  it('stops at the size cap and says so; a corrupt layer is unknown with the reason, never a crash', async () => {
    const big = await scanner({ maxImageBytes: 1024 * 1024 }).scan('big');
    assert.equal(big.class, 'unknown');
    assert.equal(big.outcome, 'stopped');
    assert.match(big.detail, /not read: its layers are \d+ bytes, over maxImageBytes 1048576/);
    assert.equal(big.bytes, 0);
    const corrupt = await scanner().scan('corrupt');
    assert.equal(corrupt.class, 'unknown');
    assert.equal(corrupt.outcome, 'scanned');
    assert.match(corrupt.detail, /^layer sha256:[0-9a-f]{12}: .*(header|gzip|Z_DATA_ERROR)/i);
    const missing = await scanner().scan('no-such-image');
    assert.equal(missing.outcome, 'failed');
    assert.match(missing.detail, /could not read the manifest: .*404/);
  });

  it('a connection cut in the middle of a layer is a failure to retry, not a corrupt image', async () => {
    const layer = gzipLayer({
      'usr/bin/hello': elfBinaries().amd64,
      'usr/share/data': randomBytes(256 * 1024),
    });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: 'sha256:' + '0'.repeat(64),
        size: 2,
      },
      layers: [{ mediaType: layer.mediaType, digest: 'sha256:' + '1'.repeat(64), size: layer.data.length }],
    });
    // A registry whose connection drops halfway through the blob (a small local server).
    const cutting = createHttpServer((req, res) => {
      if (req.url!.includes('/manifests/')) {
        res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }).end(manifest);
        return;
      }
      res.writeHead(200, { 'Content-Length': layer.data.length });
      res.write(layer.data.subarray(0, layer.data.length >> 1), () => res.destroy());
    });
    const port = await freePort();
    await new Promise<void>((r) => cutting.listen(port, '127.0.0.1', r));
    try {
      const host = `127.0.0.1:${port}`;
      const policy = policyFrom(contentConfig(host));
      const cut = await new ContentScanner(
        new RegistryClient(endpointsFor(policy.config.imageInspection)),
        policy.config.imageInspection.content,
        NO_CONTENT_EVENTS,
      ).scan(parseReference(`${host}/ci/cut:v1`)!);
      assert.equal(cut.class, 'unknown');
      assert.equal(cut.outcome, 'failed', cut.detail);
      assert.match(cut.detail, /^layer sha256:1{12}: /);
    } finally {
      cutting.close();
    }
  });

  it('reads a base layer shared by two images once', async () => {
    const { scan, cache } = scanner();
    await scan('debian');
    await scan('debian-tools');
    assert.deepEqual(cache, ['miss', 'hit', 'miss']);
  });

  it('the first admission goes by config, the scan is queued, the next admission goes by content', async () => {
    const policy = policyFrom(contentConfig(registry.host));
    const store = new MemoryVerdictStore(storeTimes(policy.config.imageInspection.content));
    const inspector = inspectorFor(policy.config.imageInspection, undefined, {
      store,
      events: NO_CONTENT_EVENTS,
    })!;
    const deps = { policy, inspectImages: (i: string[]) => inspector.inspect(i) };
    const review = buildWith(ref('multilib'));
    const first = await reviewAdmission(review, deps);
    assert.ok(first.ok && first.kind === 'patched');
    assert.equal(
      patchedPod(review.request.object, first).metadata!.annotations![ANNOTATION('route')],
      'kata',
    );
    await inspector.content!.idle();
    assert.equal(store.get(images.multilib!)!.phase, 'Scanned');
    const second = await reviewAdmission(review, deps);
    assert.ok(second.ok && second.kind === 'patched');
    const pod = patchedPod(review.request.object, second);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.match(
      pod.metadata!.annotations![ANNOTATION('detail')]!,
      /is 32-bit \(content: \/opt\/sdk\/bin\/aapt, .* 32-bit ELF files\); class 32-bit goes to legacy/,
    );
  });

  it('scan prints class, route and evidence; --from reads a list; progress goes to stderr', async () => {
    const configFile = join(dir, 'config.yaml');
    writeFileSync(configFile, contentConfig(registry.host));
    const list = join(dir, 'images.txt');
    writeFileSync(list, `# images to prepare\n${ref('oldbase')}\n`);
    const { io, out, err } = capturedIo();
    const code = await run(['scan', ref('multilib'), '--from', list, '--config', configFile, '--json'], io);
    assert.equal(code, 0, err.join(''));
    const lines = out
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.image, l.class, l.route]),
      [
        [ref('multilib'), '32-bit', 'legacy'],
        [ref('oldbase'), 'legacy-glibc', 'legacy'],
      ],
    );
    assert.equal(lines[0].evidence.length, 3);
    assert.match(err.join(''), /scanning .*multilib:v1 \(1\/2\)\n.*layer 1\/2/);
    out.length = 0;
    assert.equal(await run(['scan', ref('debian'), '--config', configFile], io), 0);
    assert.match(out.join(''), /class: {4}ok\n {2}route: {4}kata\n {2}detail: {3}debian 12, glibc/);
    out.length = 0;
    const podFile = join(dir, 'pod.json');
    writeFileSync(podFile, JSON.stringify(buildWith(ref('oldbase')).request.object));
    assert.equal(await run(['explain', podFile, '--config', configFile, '--scan'], io), 0);
    assert.match(out.join(''), /legacy-glibc.*content: glibc 2\.12 \(\/lib64\/libc-2\.12\.so\)/);
  });

  it('scan says why a registry could not be read, with the setting to check, and decides no route', async () => {
    const tls = await startRegistry(join(dir, 'storage'), { tls: true });
    try {
      const configFile = join(dir, 'unreadable.yaml');
      // The TLS registry's CA is not given; the plain-http one is not marked insecure.
      writeFileSync(
        configFile,
        `imageInspection: ${JSON.stringify({ enabled: true, registries: { [tls.host]: {}, [registry.host]: {} }, content: { enabled: true } })}\n`,
      );
      const { io, out } = capturedIo();
      const code = await run(
        ['scan', `${tls.host}/ci/multilib:v1`, ref('multilib'), '--config', configFile],
        io,
      );
      assert.equal(code, 1, 'a registry could not be read');
      const text = out.join('');
      assert.match(text, /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
      assert.match(text, /give it as caFile for this registry/);
      assert.match(text, /set insecure: true for it/);
      assert.doesNotMatch(text, /route: {4}kata/);
      assert.match(text, /route: {4}\(none: the scan failed/);
    } finally {
      await tls.stop();
    }
  });

  it('serve: the next admission of a scanned image routes by content; metrics count the scan', async () => {
    const configFile = join(dir, 'serve.yaml');
    writeFileSync(configFile, contentConfig(registry.host));
    const served = serve([
      '--config',
      configFile,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--dev-certs',
      join(dir, 'certs'),
    ]);
    try {
      const port = await served.port();
      const ca = readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8');
      const review = buildWith(ref('app-server'));
      const post = () =>
        httpsRequest(port, ca, { method: 'POST', path: '/mutate', body: JSON.stringify(review) }).then((r) =>
          JSON.parse(r.body),
        );
      const routeOf = (answer: any) =>
        podFromResponse(review.request.object, answer).metadata!.annotations![ANNOTATION('route')];
      assert.equal(routeOf(await post()), 'kata');
      await served.logged('content scanned');
      assert.equal(routeOf(await post()), 'legacy');
      const samples = parsePrometheus(
        (await httpsRequest(port, ca, { method: 'GET', path: '/metrics' })).body,
      );
      const value = (name: string, labels: Record<string, string> = {}) =>
        samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
          ?.value;
      assert.equal(value('kata_admission_content_scans_total', { result: 'legacy-glibc' }), 1);
      assert.ok(value('kata_admission_content_scan_bytes_total')! > 0);
      assert.equal(value('kata_admission_content_layer_cache_total', { result: 'miss' }), 2);
      assert.equal(value('kata_admission_content_scan_queue_depth'), 0);
      assert.equal(value('kata_admission_content_verdicts'), 1);
    } finally {
      served.child.kill('SIGTERM');
    }
  });
});
