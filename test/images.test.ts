// Image inspection against a real registry (Debian's docker-registry): architecture and legacy
// glibc detection, caching, coalescing, deadlines, auth, TLS, and misbehaving registries.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { reviewAdmission } from '../src/admission/review.js';
import { classifyImage } from '../src/images/classify.js';
import { createInspector } from '../src/images/inspector.js';
import { parseReference } from '../src/images/reference.js';
import { createLogger } from '../src/observability/logger.js';
import { startWebhook } from '../src/server/webhook.js';
import { ANNOTATION, answer, fixture, patchedPod, policyFrom, withPod } from './helpers.js';
import { freePort } from './cluster/controlplane.js';
import { httpsRequest } from './https.js';
import { parsePrometheus } from './prometheus.js';
import { seedImages, startRegistry, type Registry } from './registry/registry.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kata-admission-images-'));
const storage = join(dir, 'storage');

function inspectionConfig(registries: Record<string, object>, settings: Record<string, unknown> = {}) {
  return `imageInspection: ${JSON.stringify({ enabled: true, timeoutMs: 1500, registries, ...settings })}\n`;
}

function buildWithImage(image: string) {
  return withPod(fixture('build-plain'), (pod) => {
    pod.spec!.containers[0]!.image = image;
  });
}

describe('image references and classification (pure)', () => {
  it('normalises references as Docker does', () => {
    assert.deepEqual(parseReference('node:20'), {
      registry: 'docker.io',
      repository: 'library/node',
      tag: '20',
    });
    assert.deepEqual(parseReference('golang'), {
      registry: 'docker.io',
      repository: 'library/golang',
      tag: 'latest',
    });
    assert.deepEqual(parseReference('screwdrivercd/launcher:stable'), {
      registry: 'docker.io',
      repository: 'screwdrivercd/launcher',
      tag: 'stable',
    });
    assert.deepEqual(parseReference('127.0.0.1:5000/ci/x:v1'), {
      registry: '127.0.0.1:5000',
      repository: 'ci/x',
      tag: 'v1',
    });
    assert.deepEqual(parseReference('localhost/x'), {
      registry: 'localhost',
      repository: 'x',
      tag: 'latest',
    });
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseReference(`quay.io/a/b@${digest}`), {
      registry: 'quay.io',
      repository: 'a/b',
      digest,
    });
    assert.equal(parseReference('UPPER/case'), undefined);
    assert.equal(parseReference('x@notadigest'), undefined);
  });

  it('classifies platforms, labels and history', () => {
    const rules = [{ label: 'base', pattern: /centos:6/i }, { history: /centos-release-6/i }];
    const config = (architecture: string, labels = {}, history: string[] = []) => ({
      platform: { os: 'linux', architecture },
      labels,
      history,
    });
    assert.equal(
      classifyImage(
        {
          platforms: [
            { os: 'linux', architecture: '386' },
            { os: 'linux', architecture: 'arm', variant: 'v7' },
          ],
        },
        rules,
      ).class,
      '32-bit',
    );
    assert.equal(
      classifyImage({ platforms: [{ os: 'windows', architecture: 'amd64' }] }, rules).class,
      'unknown',
    );
    assert.equal(
      classifyImage(
        {
          platforms: [{ os: 'linux', architecture: 'amd64' }],
          config: config('amd64', { base: 'centos:6' }),
        },
        rules,
      ).class,
      'legacy-glibc',
    );
    assert.equal(
      classifyImage(
        {
          platforms: [{ os: 'linux', architecture: 'amd64' }],
          config: config('amd64', {}, ['yum install centos-release-6']),
        },
        rules,
      ).class,
      'legacy-glibc',
    );
    assert.deepEqual(
      classifyImage({ platforms: [{ os: 'linux', architecture: 'amd64' }], config: config('amd64') }, rules),
      { class: 'ok', detail: 'linux/amd64' },
    );
  });
});

describe('image inspection against a real registry', { timeout: 5 * 60_000 }, () => {
  let registry: Registry;
  let registries: Record<string, object>;
  const image = (name: string) => `${registry.host}/ci/${name}:v1`;

  before(async () => {
    await seedImages(storage);
    registry = await startRegistry(storage);
    registries = { [registry.host]: { insecure: true } };
  });
  after(() => registry.stop());

  const expectations: [string, string, string, RegExp][] = [
    ['amd64', 'kata', 'default', /no rule sends this build elsewhere/],
    ['i386', 'legacy', 'image-arch', /is 32-bit \(only linux\/386\)/],
    ['armv7', 'legacy', 'image-arch', /is 32-bit \(only linux\/arm\/v7\)/],
    ['multi', 'kata', 'default', /no rule/],
    ['old32', 'legacy', 'image-arch', /only linux\/386, linux\/arm\/v6/],
    [
      'legacybase',
      'legacy',
      'image-class',
      /legacy glibc \(label org\.opencontainers\.image\.base\.name=docker\.io\/library\/centos:6\)/,
    ],
    ['yum-history', 'legacy', 'image-class', /history "\/bin\/sh -c yum install -y centos-release-6/],
    ['nolabels', 'kata', 'default', /no rule/],
  ];

  it('routes each test image through `kata-admission review`', async () => {
    const config = join(dir, 'inspect.yaml');
    writeFileSync(config, inspectionConfig(registries));
    for (const [name, route, reason, detail] of expectations) {
      const reviewFile = join(dir, `${name}.json`);
      writeFileSync(reviewFile, JSON.stringify(buildWithImage(image(name))));
      const run = spawnSync(
        process.execPath,
        [join(ROOT, 'bin', 'kata-admission.js'), 'review', '--config', config, reviewFile],
        { encoding: 'utf8' },
      );
      assert.equal(run.status, 0, run.stderr);
      const out = JSON.parse(run.stdout);
      assert.equal(out.response.auditAnnotations.route, route, name);
      assert.match(out.response.auditAnnotations.reason, new RegExp(`^${reason}: `), name);
      assert.match(out.response.auditAnnotations.reason, detail, name);
    }
  });

  it('routes each test image through the HTTPS server, and serves repeats from the cache', async () => {
    const config = join(dir, 'inspect-https.yaml');
    writeFileSync(config, inspectionConfig(registries));
    const webhook = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      configPath: config,
      devCertsDir: join(dir, 'certs'),
      logger: createLogger('silent'),
    });
    const ca = readFileSync(webhook.devCaFile!, 'utf8');
    try {
      for (const [name, route, reason] of expectations) {
        const review = buildWithImage(image(name));
        const res = await httpsRequest(webhook.port, ca, { body: JSON.stringify(review) });
        assert.equal(res.json.response.auditAnnotations.route, route, name);
        assert.match(res.json.response.auditAnnotations.reason, new RegExp(`^${reason}: `), name);
      }
      const before = registry.requests.length;
      for (const [name, route] of expectations) {
        const res = await httpsRequest(webhook.port, ca, {
          body: JSON.stringify(buildWithImage(image(name))),
        });
        assert.equal(res.json.response.auditAnnotations.route, route);
      }
      assert.equal(registry.requests.length, before, 'the second round never reached the registry');
      const samples = parsePrometheus(await webhook.metrics.registry.metrics());
      const hits = samples.find(
        (s) => s.name === 'kata_admission_image_cache_requests_total' && s.labels.result === 'hit',
      )?.value;
      assert.ok((hits ?? 0) >= expectations.length);
      assert.ok(
        samples.some(
          (s) =>
            s.name === 'kata_admission_image_registry_requests_total' &&
            s.labels.registry === registry.host &&
            s.value > 0,
        ),
      );
    } finally {
      await webhook.shutdown();
    }
  });

  it('coalesces identical concurrent lookups into one', async () => {
    const inspector = createInspector(policyFrom(inspectionConfig(registries)).config.imageInspection);
    const before = registry.requests.length;
    await Promise.all([
      inspector.inspect([image('multi')]),
      inspector.inspect([image('multi')]),
      inspector.inspect([image('multi'), image('multi')]),
    ]);
    const manifestRequests = registry.requests.slice(before).filter((r) => r === '/v2/ci/multi/manifests/v1');
    assert.equal(manifestRequests.length, 1);
  });

  it('shows what inspection found in `explain`', () => {
    const config = join(dir, 'inspect-explain.yaml');
    writeFileSync(config, inspectionConfig(registries));
    const pod = join(dir, 'pod.json');
    writeFileSync(pod, JSON.stringify(buildWithImage(image('i386')).request.object));
    const run = spawnSync(
      process.execPath,
      [join(ROOT, 'bin', 'kata-admission.js'), 'explain', '--config', config, pod],
      { encoding: 'utf8' },
    );
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^route: +legacy$/m);
    assert.match(
      run.stdout,
      new RegExp(
        `^  ${image('i386').replaceAll('.', '\\.')}: 32-bit \\(only linux/386\\) -> route legacy$`,
        'm',
      ),
    );
    assert.match(
      run.stdout,
      /screwdrivercd\/launcher:stable: unknown/m,
      'an image nobody can reach here is unknown, not an error',
    );
  });

  it('reads a registry over TLS with its CA, and not without', async () => {
    const tls = await startRegistry(storage, { tls: true });
    try {
      const caFile = join(dir, 'registry-ca.pem');
      writeFileSync(caFile, tls.caPem!);
      const withCa = createInspector(
        policyFrom(inspectionConfig({ [tls.host]: { caFile } })).config.imageInspection,
      );
      assert.equal(
        (await withCa.inspect([`${tls.host}/ci/i386:v1`])).get(`${tls.host}/ci/i386:v1`)!.class,
        '32-bit',
      );
      const without = createInspector(
        policyFrom(inspectionConfig({ [tls.host]: {} })).config.imageInspection,
      );
      const verdict = (await without.inspect([`${tls.host}/ci/i386:v1`])).get(`${tls.host}/ci/i386:v1`)!;
      assert.equal(verdict.class, 'unknown');
      assert.match(verdict.detail, /CERT|certificate|self.signed|UNABLE/i);
    } finally {
      await tls.stop();
    }
  });

  for (const kind of ['htpasswd', 'token'] as const) {
    it(`authenticates with dockerconfigjson credentials (${kind} auth)`, async () => {
      const user = { username: 'ci-reader', password: 's3cret-pass' };
      const authed = await startRegistry(storage, {
        auth: kind === 'htpasswd' ? { htpasswd: user } : { token: user },
      });
      try {
        const pullSecret = join(dir, `${kind}.dockerconfigjson`);
        writeFileSync(
          pullSecret,
          JSON.stringify({
            auths: {
              [authed.host]: { auth: Buffer.from(`${user.username}:${user.password}`).toString('base64') },
            },
          }),
        );
        const ref = `${authed.host}/ci/legacybase:v1`;
        const withCreds = createInspector(
          policyFrom(
            inspectionConfig({
              [authed.host]: {
                insecure: true,
                dockerConfigJson: pullSecret,
                // The token service listens on another port: its realm is named to receive credentials.
                ...(authed.tokenRealm && { tokenRealms: [authed.tokenRealm] }),
              },
            }),
          ).config.imageInspection,
        );
        assert.equal((await withCreds.inspect([ref])).get(ref)!.class, 'legacy-glibc');
        const anonymous = createInspector(
          policyFrom(inspectionConfig({ [authed.host]: { insecure: true } })).config.imageInspection,
        );
        const verdict = (await anonymous.inspect([ref])).get(ref)!;
        assert.equal(verdict.class, 'unknown');
        assert.match(verdict.detail, /credentials|401|token endpoint/);
      } finally {
        await authed.stop();
      }
    });
  }

  it('answers within the budget when a registry hangs, falling back to onUnknown', async () => {
    const sockets: Socket[] = [];
    const hang = createTcpServer((s) => sockets.push(s)); // accepts, never answers
    const port = await freePort();
    await new Promise<void>((r) => hang.listen(port, '127.0.0.1', r));
    try {
      const host = `127.0.0.1:${port}`;
      const policy = policyFrom(
        inspectionConfig({ [host]: { insecure: true } }, { timeoutMs: 300, onUnknown: 'legacy' }),
      );
      const inspector = createInspector(policy.config.imageInspection);
      const started = performance.now();
      const outcome = await reviewAdmission(buildWithImage(`${host}/ci/slow:v1`), {
        policy,
        inspectImages: (i) => inspector.inspect(i),
      });
      const elapsed = performance.now() - started;
      // A bound on correctness (the budget is honoured), far from the 5 s the fetch itself may take.
      assert.ok(elapsed < 3000, `answered after ${elapsed} ms`);
      assert.ok(outcome.ok);
      assert.equal(outcome.summary.decision!.route, 'legacy');
      assert.equal(outcome.summary.decision!.rule, 'image-unknown');
      assert.match(
        outcome.summary.decision!.detail,
        /could not be inspected \(no answer within the 300 ms budget\); imageInspection\.onUnknown is legacy/,
      );
    } finally {
      for (const s of sockets) s.destroy();
      hang.close();
    }
  });

  it('treats garbage as unknown, never a crash, and onUnknown kata keeps weightage in charge', async () => {
    const garbage = createHttpServer((_req, res) =>
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"manifests": "not a list", '),
    );
    const port = await freePort();
    await new Promise<void>((r) => garbage.listen(port, '127.0.0.1', r));
    try {
      const host = `127.0.0.1:${port}`;
      const policy = policyFrom(inspectionConfig({ [host]: { insecure: true } }));
      const inspector = createInspector(policy.config.imageInspection);
      const review = buildWithImage(`${host}/ci/garbage:v1`);
      const outcome = await answer(review, policy);
      const withFacts = await reviewAdmission(review, { policy, inspectImages: (i) => inspector.inspect(i) });
      assert.ok(withFacts.ok);
      const pod = patchedPod(review.request.object, {
        ...outcome,
        review: withFacts.review,
      } as typeof outcome);
      assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
      assert.match(
        pod.metadata!.annotations![ANNOTATION('detail')]!,
        /could not be inspected \(.*not valid JSON\), treated as compatible/,
      );
    } finally {
      garbage.close();
    }
  });

  it('stops asking a registry that keeps failing (circuit breaker)', async () => {
    let connections = 0;
    const refusing = createTcpServer((s) => {
      connections++;
      s.destroy();
    });
    const port = await freePort();
    await new Promise<void>((r) => refusing.listen(port, '127.0.0.1', r));
    try {
      const host = `127.0.0.1:${port}`;
      const inspector = createInspector(
        policyFrom(inspectionConfig({ [host]: { insecure: true } }, { negativeCacheTtlSeconds: 0 })).config
          .imageInspection,
      );
      for (let i = 0; i < 5; i++) await inspector.inspect([`${host}/ci/x${i}:v1`]);
      const seen = connections;
      const verdict = (await inspector.inspect([`${host}/ci/another:v1`])).get(`${host}/ci/another:v1`)!;
      assert.match(verdict.detail, /is failing; not asked again until/);
      assert.equal(connections, seen, 'an open breaker sends nothing');
    } finally {
      refusing.close();
    }
  });
});
