// The `kata-admission` command as a user runs it: the real bin, real files, exit codes, stderr.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ANNOTATION, FIXTURES, fixture, podFromResponse, withPod } from './helpers.js';
import { startHostile } from './registry/hostile.js';
import { spawnServer } from './serve.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'kata-admission.js');
const tmp = mkdtempSync(join(tmpdir(), 'kata-admission-cli-'));

function cli(args: string[], input?: string) {
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, input, encoding: 'utf8' });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function fileWith(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

describe('kata-admission review', () => {
  it('answers a fixture file with the response AdmissionReview', () => {
    const { code, stdout, stderr } = cli(['review', fileURLToPath(new URL('build-dind.json', FIXTURES))]);
    assert.equal(code, 0, stderr);
    const out = JSON.parse(stdout);
    const review = fixture('build-dind');
    assert.equal(out.response.uid, review.request.uid);
    const pod = podFromResponse(review.request.object, out);
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
  });

  it('reads YAML from standard input and applies --config', () => {
    const yaml = JSON.stringify(fixture('build-plain')); // JSON is YAML; the parser must take both
    const config = fileWith('legacy.yaml', 'weightage: 0\n');
    const { code, stdout } = cli(['review', '--config', config, '-'], yaml);
    assert.equal(code, 0);
    assert.equal(JSON.parse(stdout).response.auditAnnotations.route, 'legacy');
  });

  it('exits 2 with one line on stderr for a body that is not an AdmissionReview', () => {
    const { code, stdout, stderr } = cli(['review', '-'], '{"kind": "Service"}');
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.match(stderr, /^kata-admission: not a valid AdmissionReview: .+\n$/);
  });

  it('exits 2 naming the field of an invalid config, without a stack trace', () => {
    const config = fileWith('bad.yaml', 'weightage: 150\nroutes: {kata: {runtimeClass: kata}}\n');
    const { code, stderr } = cli([
      'review',
      '--config',
      config,
      fileURLToPath(new URL('build-plain.json', FIXTURES)),
    ]);
    assert.equal(code, 2);
    assert.match(stderr, /weightage: must be from 0 to 100/);
    assert.match(stderr, /routes\.kata: unknown key "runtimeClass" \(did you mean "runtimeClassName"\?\)/);
    assert.equal(stderr.trim().split('\n').length, 1);
    assert.doesNotMatch(stderr, /\n\s+at /);
  });

  it('exits 2 for a missing file and for text that is neither JSON nor YAML', () => {
    assert.equal(cli(['review', join(tmp, 'nope.json')]).code, 2);
    const { code, stderr } = cli(['review', '-'], '{ "unclosed": [');
    assert.equal(code, 2);
    assert.match(stderr, /neither JSON nor YAML/);
  });

  it('exits 2 for an unknown command or option, 0 for --help', () => {
    assert.equal(cli(['frobnicate']).code, 2);
    assert.equal(cli(['review', '--colour']).code, 2);
    const help = cli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /review/);
  });
});

describe('kata-admission explain', () => {
  it('tells the route, the reason and the changes for the shipped example pod', () => {
    const { code, stdout } = cli(['explain', 'examples/build-pod.yaml']);
    assert.equal(code, 0);
    assert.match(stdout, /^route: +kata$/m);
    assert.match(stdout, /^reason: +default: /m);
    assert.match(stdout, /^ {2}add +\/spec\/runtimeClassName = "kata"$/m);
    assert.match(stdout, /privileged turned off/);
  });

  it('uses the example config: the pinned job goes to legacy', () => {
    const { code, stdout } = cli(['explain', '--config', 'examples/config.yaml', 'examples/build-pod.yaml']);
    assert.equal(code, 0);
    assert.match(stdout, /^route: +legacy$/m);
    assert.match(stdout, /^reason: +pin: pinned to legacy by pins\[0\]: publishes with nested KVM/m);
  });

  it('says why a pod is left alone', () => {
    const pod = fileWith(
      'web.yaml',
      'apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\nspec: {containers: [{name: a, image: nginx}]}\n',
    );
    const { code, stdout } = cli(['explain', pod]);
    assert.equal(code, 0);
    assert.match(stdout, /not a build pod: namespace "default" is not a build namespace/);
  });

  it('--offline asks no registry; without it, a note says the registries are asked', async () => {
    const registry = await startHostile();
    try {
      const config = fileWith(
        'inspect.yaml',
        `imageInspection: {enabled: true, timeoutMs: 2000, registries: {"${registry.host}": {insecure: true}}}\n`,
      );
      const pod = fileWith(
        'pod.json',
        JSON.stringify(
          withPod(
            fixture('build-plain'),
            (p) => void (p.spec!.containers[0]!.image = `${registry.host}/ci/x:v1`),
          ).request.object,
        ),
      );
      const run = async (args: string[]) => {
        const child = spawn(process.execPath, [BIN, 'explain', '--config', config, ...args, pod], {
          cwd: ROOT,
        });
        let stderr = '';
        child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
        const [code] = (await once(child, 'exit')) as [number];
        return { code, stderr };
      };
      const offline = await run(['--offline']);
      assert.equal(offline.code, 0, offline.stderr);
      assert.equal(registry.requests.length, 0, 'no registry was asked');
      assert.doesNotMatch(offline.stderr, /registries are asked/);
      const online = await run([]);
      assert.equal(online.code, 0, online.stderr);
      assert.match(
        online.stderr,
        /image inspection is on, so the images' registries are asked \(--offline: none\)/,
      );
      assert.ok(registry.requests.length > 0, 'the registry was asked');
    } finally {
      await registry.close();
    }
  });

  it('explains a pod kata-admission already routed by its stored decision, without routing it again', () => {
    const review = fixture('build-rhel6');
    const answered = cli(['review', '-'], JSON.stringify(review));
    assert.equal(answered.code, 0, answered.stderr);
    const stored = podFromResponse(review.request.object, JSON.parse(answered.stdout));
    const { code, stdout } = cli(['explain', fileWith('stored.json', JSON.stringify(stored))]);
    assert.equal(code, 0);
    assert.match(stdout, /: routed by kata-admission \(config [0-9a-f]{12}; this config [0-9a-f]{12}\)$/m);
    assert.match(stdout, /^route: +legacy$/m);
    assert.match(stdout, /^reason: +excluded-image: /m);
    assert.match(stdout, /^as stored: runtime \(cluster default\), .*service account token off$/m);
    assert.match(stdout, /^now: +a build like it would go to legacy \(excluded-image: /m);
    assert.doesNotMatch(stdout, /re-routed|^changes:/m);
  });

  it('exits 2 for a build pod that cannot be routed', () => {
    const pod = fileWith(
      'broken.yaml',
      'kind: Pod\nmetadata: {name: b, labels: {app: screwdriver, tier: builds}}\nspec: {}\n',
    );
    const { code, stdout } = cli(['explain', pod]);
    assert.equal(code, 2);
    assert.match(stdout, /refused: .*spec\.containers/);
  });
});

describe('rough edges a new user meets', () => {
  it('prints the version', () => {
    const { code, stdout } = cli(['--version']);
    assert.equal(code, 0);
    assert.equal(stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('an older Node says which Node it needs instead of failing on an import', () => {
    const result = spawnSync(
      process.execPath,
      [
        '--import',
        'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.20.2"})',
        BIN,
        'serve',
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    assert.equal(result.status, 1);
    assert.equal(
      result.stderr,
      'kata-admission: needs Node.js 22.19 or later (24 LTS recommended); this is 20.20.2\n',
    );
  });

  it('`npm start` serves on loopback only, on the embedded default config', async () => {
    // The script's command line as npm runs it (npm itself would sit between the test and the server).
    const start = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.start as string;
    const [command, ...args] = start.split(' ');
    assert.equal(command, 'node');
    const served = spawnServer(process.execPath, [...args, '--port', '0'], { cwd: ROOT });
    try {
      const line = await served.logged('serving admission reviews', 60_000);
      assert.equal(line.address, '127.0.0.1');
      assert.equal(line.config, '(embedded default)');
    } finally {
      served.child.kill('SIGTERM');
      await once(served.child, 'exit');
    }
  });

  it('explain says a Deployment is not a Pod', () => {
    const deployment = fileWith(
      'deploy.yaml',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: sd-build-namespace}\nspec: {}\n',
    );
    const { code, stderr } = cli(['explain', deployment]);
    assert.equal(code, 2);
    assert.match(stderr, /explain takes a Pod or an AdmissionReview, got a Deployment/);
  });

  it('review on a bare Pod points to explain', () => {
    const { code, stderr } = cli(['review', 'examples/build-pod.yaml']);
    assert.equal(code, 2);
    assert.match(stderr, /got a bare Pod: use `kata-admission explain`/);
  });

  it('a YAML syntax error shows the line and a caret', () => {
    const { code, stderr } = cli(['explain', '-'], 'kind: Pod\nmetadata: {name: [x}\n');
    assert.equal(code, 2);
    assert.match(stderr, /line 2, column \d+:\n\n?.*metadata: \{name: \[x\}\n\s*\^/);
  });

  it('serve exits 2 for a usage error, like every other command', () => {
    const { code, stderr } = cli(['serve', '--tls-cert', 'only-a-cert.pem']);
    assert.equal(code, 2);
    assert.match(stderr, /give both --tls-cert and --tls-key, or neither/);
  });

  it('certs refuses a service or namespace that is not a DNS label', () => {
    for (const args of [
      ['--service', 'Bad_Name', '--namespace', 'ok'],
      ['--service', 'ok', '--namespace', 'Not.A.Label'],
    ]) {
      const { code, stderr } = cli(['certs', ...args, '--out', join(tmp, 'never')]);
      assert.equal(code, 2);
      assert.match(stderr, /is not a valid DNS label/);
    }
  });

  // Before, the process lingered until the abandoned lookup's own deadline (at least 5 s) ran out.
  it(
    'review exits once the answer is printed, while a registry still hangs on its lookup',
    { timeout: 60_000 },
    async () => {
      // A registry that accepts connections and never answers, held open until the test ends.
      const sockets: Socket[] = [];
      const hanging = createServer((socket) => {
        sockets.push(socket);
      });
      await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
      const host = `127.0.0.1:${(hanging.address() as AddressInfo).port}`;
      try {
        const config = fileWith(
          'hanging.yaml',
          `imageInspection: {enabled: true, timeoutMs: 200, registries: {"${host}": {insecure: true}}}\n`,
        );
        const review = withPod(fixture('build-plain'), (pod) => {
          pod.spec!.containers[0]!.image = `${host}/ci/app:1`;
        });
        const child = spawn(process.execPath, [BIN, 'review', '--config', config, '-'], { cwd: ROOT });
        let stdout = '';
        let answeredAt = 0;
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
          answeredAt ||= performance.now();
        });
        child.stdin.end(JSON.stringify(review));
        const [code] = (await once(child, 'exit')) as [number];
        assert.equal(code, 0);
        assert.ok(
          performance.now() - answeredAt < 2500,
          "the process ended long before the lookup's 5 s deadline",
        );
        assert.ok(sockets.length > 0, 'the lookup reached the registry');
        assert.match(JSON.parse(stdout).response.auditAnnotations.reason, /could not be inspected/);
      } finally {
        for (const s of sockets) s.destroy();
        hanging.close();
      }
    },
  );
});
