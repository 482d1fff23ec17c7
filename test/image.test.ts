// The image, built for real: `npm run image` (buildah, no Docker daemon) builds the Dockerfile on a
// stand-in for node:24 slim (test/image/base.sh; Docker Hub is out of reach here), .ci/release.sh
// pushes it and the chart to a real registry, and runc runs the image pulled back from it the way
// the kubelet would run the Deployment's container: its args, its mounts, uid 65532, read-only root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ensureCerts } from '../src/tls/certs.js';
import { freePort } from './cluster/controlplane.js';
import { run, tool } from './cluster/deploy.js';
import { fixture } from './helpers.js';
import { eventually, httpsRequest } from './https.js';
import { startRegistry, type Registry } from './registry/registry.js';
import { BASE, buildahIn, type Buildah } from './image/build.js';
import { spawnServer, type Served } from './serve.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
const DEPLOYMENT = parse(readFileSync(join(ROOT, 'deploy/app/deployment.yaml'), 'utf8'));
const CONFIG_MAP = parse(readFileSync(join(ROOT, 'deploy/rendered/configmap.yaml'), 'utf8'));

describe(
  'the image',
  { timeout: 20 * 60_000, skip: process.getuid?.() !== 0 && 'buildah and runc run as root here' },
  () => {
    let dir: string;
    let env: NodeJS.ProcessEnv;
    let storage: Buildah;
    let registry: Registry;
    const buildah = (args: string[]) => run('buildah', args, env).trim();

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'kata-admission-image-'));
      // buildah's images and containers live in this test's own folder.
      storage = buildahIn(dir);
      env = storage.env;
      registry = await startRegistry(join(dir, 'registry'));
    });

    after(async () => {
      await registry?.stop();
      storage?.clean();
      rmSync(dir, { recursive: true, force: true });
    });

    it('is built by `npm run image` and released with its chart by .ci/release.sh', async () => {
      const npmCache = run('npm', ['config', 'get', 'cache']).trim();
      const release = spawnSync(
        'bash',
        [
          join(ROOT, '.ci/release.sh'),
          `v${VERSION}`,
          registry.host,
          '--plain-http',
          '--base',
          BASE,
          '--npm-cache',
          npmCache,
        ],
        { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8' },
      );
      assert.equal(release.status, 0, release.stderr);
      assert.match(release.stdout, /STEP \d+\/\d+: RUN npm ci/);
      assert.match(
        release.stderr,
        new RegExp(`released v${VERSION}: image ${registry.host}/kata-admission:${VERSION}`),
      );
      // The registry holds both; helm reads the chart back from it.
      const chart = parse(
        run(
          tool('helm'),
          [
            'show',
            'chart',
            `oci://${registry.host}/charts/kata-admission`,
            '--version',
            VERSION,
            '--plain-http',
          ],
          env,
        ),
      );
      assert.equal(chart.appVersion, VERSION);
    });

    it('refuses a release whose tag is not the package version', () => {
      const release = spawnSync(
        'bash',
        [join(ROOT, '.ci/release.sh'), 'v9.9.9', registry.host, '--plain-http'],
        {
          cwd: ROOT,
          env: { ...process.env, ...env },
          encoding: 'utf8',
        },
      );
      assert.equal(release.status, 1);
      assert.match(release.stderr, new RegExp(`v9.9.9 does not match package.json \\(${VERSION}\\)`));
    });

    describe('pulled from the registry and run as the Deployment runs it', () => {
      const id = `kata-admission-test-${process.pid}`;
      let rootfs: string;
      let server: Served;
      let port: number;
      let ca: string;

      before(async () => {
        const container = buildah([
          'from',
          '--quiet',
          '--tls-verify=false',
          `docker://${registry.host}/kata-admission:${VERSION}`,
        ]);
        rootfs = buildah(['mount', container]);
        const image = JSON.parse(buildah(['inspect', '--type', 'container', container])).OCIv1.config;
        const spec = DEPLOYMENT.spec.template.spec;
        const webhook = spec.containers[0];
        // The Pod's volumes: the ConfigMap's config and the TLS Secret, readable by the pod's user.
        const volumes = join(dir, 'volumes');
        mkdirSync(join(volumes, 'config'), { recursive: true });
        writeFileSync(join(volumes, 'config', 'config.yaml'), CONFIG_MAP.data['config.yaml']);
        await ensureCerts(join(volumes, 'tls'), ['localhost'], ['127.0.0.1']);
        chmodSync(join(volumes, 'tls'), 0o755);
        for (const f of ['tls.crt', 'tls.key', 'ca.crt']) chmodSync(join(volumes, 'tls', f), 0o644);
        ca = readFileSync(join(volumes, 'tls', 'ca.crt'), 'utf8');
        const sources: Record<string, string> = {
          config: join(volumes, 'config'),
          tls: join(volumes, 'tls'),
        };
        // The kubelet's way: args replace the image's Cmd, env adds to its Env. Loopback and a free
        // port stand in for the pod's network namespace.
        port = await freePort();
        const args = (webhook.args as string[]).map((a) => (a.startsWith('--port=') ? `--port=${port}` : a));
        const bundle = join(dir, 'bundle');
        mkdirSync(bundle);
        run('runc', ['spec', '--bundle', bundle]);
        const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
        const [uid, gid] = (image.User as string).split(':').map(Number);
        config.root = { path: rootfs, readonly: webhook.securityContext.readOnlyRootFilesystem };
        config.process = {
          ...config.process,
          terminal: false,
          user: { uid, gid },
          args: [...image.Entrypoint, ...args, '--host=127.0.0.1'],
          env: [
            ...image.Env,
            ...webhook.env.map((e: { name: string; value: string }) => `${e.name}=${e.value}`),
          ],
          cwd: image.WorkingDir,
          noNewPrivileges: !webhook.securityContext.allowPrivilegeEscalation,
        };
        config.linux.namespaces = config.linux.namespaces.filter(
          (n: { type: string }) => n.type !== 'network',
        );
        for (const m of webhook.volumeMounts)
          config.mounts.push({
            destination: m.mountPath,
            type: 'bind',
            source: sources[m.name],
            options: ['rbind', 'ro'],
          });
        writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
        server = spawnServer('runc', ['run', '--bundle', bundle, id]);
        await server.logged('serving admission reviews', 60_000);
      });

      after(() => {
        spawnSync('runc', ['delete', '--force', id]);
      });

      it('has the numeric user 65532 and no dev dependencies', () => {
        assert.equal(DEPLOYMENT.spec.template.spec.securityContext.runAsUser, 65532);
        assert.ok(existsSync(join(rootfs, 'app/node_modules/pino/package.json')));
        assert.ok(
          !existsSync(join(rootfs, 'app/node_modules/typescript')),
          'no dev dependencies in the image',
        );
        assert.ok(!existsSync(join(rootfs, 'app/src')), 'no sources in the image');
      });

      it('answers /readyz and reviews, running as uid 65532 on a read-only root', async () => {
        const ready = await httpsRequest(port, ca, { path: '/readyz', method: 'GET' });
        assert.equal(ready.status, 200, ready.body);
        const review = fixture('build-plain');
        const res = await httpsRequest(port, ca, { body: JSON.stringify(review) });
        assert.equal(res.status, 200);
        assert.equal(res.json.response.auditAnnotations.route, 'kata');
        // What ran: the container's process as the kernel sees it, and a write it attempts.
        const { pid } = JSON.parse(run('runc', ['state', id]));
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        assert.match(status, /^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
        const write = spawnSync(
          'runc',
          ['exec', id, 'node', '-e', "require('fs').writeFileSync('/app/x', '')"],
          {
            encoding: 'utf8',
          },
        );
        assert.notEqual(write.status, 0);
        assert.match(write.stderr, /EROFS|read-only file system/i);
      });

      it('stops cleanly on SIGTERM, as the kubelet stops it', async () => {
        run('runc', ['kill', id, 'TERM']);
        await eventually(() => server.child.exitCode !== null, 30_000, 'the container to exit');
        assert.ok(
          server.logs.some((l) => l.msg === 'stopped'),
          server.output(),
        );
      });
    });
  },
);
