// The Dockerfile's steps, performed without Docker (no engine runs here): a fresh copy, the build
// stage, a production-only install, and the entry point as the image's numeric non-root user with
// nothing writable, answering one AdmissionReview.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureCerts } from '../src/tls/certs.js';
import { fixture } from './helpers.js';
import { httpsRequest } from './https.js';
import { spawnServer } from './serve.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

describe('Dockerfile', { timeout: 10 * 60_000 }, () => {
  it('declares the steps this test performs', () => {
    for (const step of [
      'COPY package.json package-lock.json tsconfig.json ./',
      'COPY src ./src',
      'RUN npm ci\n',
      'RUN npm ci --omit=dev --ignore-scripts',
      'COPY --from=build /src/dist ./dist',
      'COPY bin ./bin',
      'USER 65532:65532',
      'ENTRYPOINT ["node", "/app/bin/kata-admission.js", "serve"]',
    ])
      assert.ok(DOCKERFILE.includes(step), `Dockerfile lacks: ${step}`);
    assert.match(DOCKERFILE, /^FROM node:24\S* AS build$/m);
    assert.match(DOCKERFILE, /^FROM node:24\S*$/m);
  });

  it('builds, installs production dependencies only, and serves as uid 65532 on a read-only tree', async () => {
    // As root (CI, these machines) the entry point runs as the image's user, for whom nothing here
    // is writable; elsewhere it runs as the current user.
    const asImageUser = process.getuid?.() === 0 ? { uid: 65532, gid: 65532 } : {};
    const dir = mkdtempSync(join(tmpdir(), 'kata-admission-image-'));
    chmodSync(dir, 0o755);
    const build = join(dir, 'src-stage');
    const app = join(dir, 'app');
    mkdirSync(build);
    mkdirSync(app);
    try {
      // Build stage: a fresh copy of what the Dockerfile copies, then npm ci (prepare compiles).
      for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'src'])
        cpSync(join(ROOT, f), join(build, f), { recursive: true });
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], {
        cwd: build,
        stdio: 'pipe',
      });
      // Runtime stage.
      for (const f of ['package.json', 'package-lock.json']) cpSync(join(ROOT, f), join(app, f));
      execFileSync(
        'npm',
        ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
        { cwd: app, stdio: 'pipe' },
      );
      cpSync(join(build, 'dist'), join(app, 'dist'), { recursive: true });
      cpSync(join(ROOT, 'bin'), join(app, 'bin'), { recursive: true });
      assert.throws(
        () => readFileSync(join(app, 'node_modules', 'typescript', 'package.json')),
        'no dev dependencies in the image',
      );

      // The mounted TLS Secret, readable by the image's user.
      const tls = join(dir, 'tls');
      await ensureCerts(tls, ['localhost'], ['127.0.0.1']);
      chmodSync(tls, 0o755);
      if (asImageUser.uid) for (const f of ['tls.crt', 'tls.key']) chownSync(join(tls, f), 65532, 65532);

      // The image's own node binary: the test runner's may sit where uid 65532 cannot read (/root).
      const node = join(dir, 'node');
      cpSync(process.execPath, node);
      chmodSync(node, 0o755);
      const entrypoint = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(DOCKERFILE)![1]!) as string[];
      const [command, script, ...args] = entrypoint.map((a) => a.replace(/^\/app\//, `${app}/`));
      const served = spawnServer(
        command === 'node' ? node : command!,
        [
          script!,
          ...args,
          '--port',
          '0',
          '--host',
          '127.0.0.1',
          '--tls-cert',
          join(tls, 'tls.crt'),
          '--tls-key',
          join(tls, 'tls.key'),
        ],
        { cwd: app, ...asImageUser, env: { PATH: process.env.PATH } },
      );
      const { child } = served;
      try {
        const port = await served.port();
        const review = fixture('build-plain');
        const res = await httpsRequest(port, readFileSync(join(tls, 'ca.crt'), 'utf8'), {
          body: JSON.stringify(review),
        });
        assert.equal(res.status, 200);
        assert.equal(res.json.response.uid, review.request.uid);
        assert.equal(res.json.response.auditAnnotations.route, 'kata');
      } finally {
        child.kill('SIGTERM');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
