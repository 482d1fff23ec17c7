// The project's image built as `npm run image` builds it (buildah, no Docker daemon), on the
// stand-in for node:24 slim (test/image/base.sh), with buildah's storage in the test's own folder.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, tool } from '../cluster/deploy.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BASE = 'localhost/kata-admission-base:test';

export interface Buildah {
  env: NodeJS.ProcessEnv;
  buildah(args: string[]): string;
  /** Removes every container and image of this storage. */
  clean(): void;
}

/** buildah on storage under `dir`, with the stand-in base image imported as BASE. */
export function buildahIn(dir: string): Buildah {
  writeFileSync(
    join(dir, 'storage.conf'),
    `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/storage"\nrunroot = "${dir}/run"\n`,
  );
  const env = {
    CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
    PATH: [dirname(tool('helm')), dirname(process.execPath), process.env.PATH].join(delimiter),
  };
  const buildah = (args: string[]) => run('buildah', args, env).trim();
  const tarball = run('bash', [join(ROOT, 'test/image/base.sh')])
    .trim()
    .split('\n')
    .pop()!;
  const base = buildah(['from', 'scratch']);
  buildah(['add', '--quiet', base, tarball, '/']);
  buildah([
    'config',
    '--env',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    '--cmd',
    'node',
    base,
  ]);
  buildah(['commit', '--quiet', '--rm', base, BASE]);
  return {
    env,
    buildah,
    clean() {
      spawnSync('buildah', ['rm', '--all'], { env: { ...process.env, ...env } });
      spawnSync('buildah', ['rmi', '--all', '--force'], { env: { ...process.env, ...env } });
    },
  };
}

/** `npm run image` on BASE, offline from npm's cache, pushed to `ref` over plain http. */
export function buildImage(b: Buildah, ref: string): void {
  const npmCache = run('npm', ['config', 'get', 'cache']).trim();
  run(
    'bash',
    [
      join(ROOT, '.ci/image.sh'),
      '--base',
      BASE,
      '--npm-cache',
      npmCache,
      '--push',
      ref,
      '--tls-verify=false',
    ],
    { ...process.env, ...b.env },
  );
}
