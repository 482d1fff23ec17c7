// Real image layers for the content tests: files laid out in a folder (genuine ELF executables from
// gcc, release files, whiteouts), archived by GNU tar, compressed by zlib, pushed as OCI images.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { fetch } from 'undici';

export type FileSpec = Buffer | string | { symlink: string } | { dir: true };

let binaries: { i386: Buffer; amd64: Buffer } | undefined;

/** A genuine i386 executable (gcc -m32, from gcc-multilib) and a genuine amd64 one. */
export function elfBinaries(): { i386: Buffer; amd64: Buffer } {
  if (binaries) return binaries;
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-elf-'));
  try {
    writeFileSync(join(dir, 'hello.c'), 'int main(void) { return 0; }\n');
    execFileSync('gcc', ['-m32', '-o', join(dir, 'hello32'), join(dir, 'hello.c')]);
    execFileSync('gcc', ['-o', join(dir, 'hello64'), join(dir, 'hello.c')]);
    const read = (name: string) => execFileSync('cat', [join(dir, name)], { maxBuffer: 1 << 26 });
    binaries = { i386: read('hello32'), amd64: read('hello64') };
    return binaries;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Lays the files out in a folder (paths without a leading "/") and returns GNU tar's archive of it. */
export function tarOf(files: Record<string, FileSpec>): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-layer-'));
  try {
    for (const [path, spec] of Object.entries(files)) {
      const target = join(dir, path);
      if (typeof spec === 'object' && 'dir' in spec) {
        mkdirSync(target, { recursive: true });
        continue;
      }
      mkdirSync(dirname(target), { recursive: true });
      if (typeof spec === 'object' && 'symlink' in spec) symlinkSync(spec.symlink, target);
      else writeFileSync(target, spec, { mode: 0o755 });
    }
    return execFileSync('tar', ['-C', dir, '--sort=name', '--owner=0', '--group=0', '-cf', '-', '.'], {
      maxBuffer: 1 << 28,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Layer {
  data: Buffer;
  mediaType: string;
  /** The digest of the uncompressed tar, which a runtime checks when it unpacks the layer. */
  diffId?: string;
}

const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export const gzipLayer = (files: Record<string, FileSpec>): Layer => {
  const tar = tarOf(files);
  return { data: gzipSync(tar), mediaType: `${OCI_LAYER}+gzip`, diffId: sha(tar) };
};
export const zstdLayer = (files: Record<string, FileSpec>): Layer => ({
  data: zstdCompressSync(tarOf(files)),
  mediaType: `${OCI_LAYER}+zstd`,
});
export const plainLayer = (files: Record<string, FileSpec>): Layer => ({
  data: tarOf(files),
  mediaType: OCI_LAYER,
});

async function pushBlob(base: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha(data);
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`blob upload start: ${start.status}`);
  const location = new URL(start.headers.get('location')!, base);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', body: data });
  if (put.status !== 201) throw new Error(`blob upload: ${put.status} ${await put.text()}`);
  return digest;
}

/** Pushes an amd64 image of these layers (bottom first); returns the manifest digest. */
export async function pushLayers(
  base: string,
  repo: string,
  tag: string,
  layers: Layer[],
  config: Record<string, unknown> = { Cmd: ['/bin/sh'] },
): Promise<string> {
  const descriptors: { mediaType: string; digest: string; size: number }[] = [];
  for (const layer of layers)
    descriptors.push({
      mediaType: layer.mediaType,
      digest: await pushBlob(base, repo, layer.data),
      size: layer.data.length,
    });
  const configBlob = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: layers.map((l, i) => l.diffId ?? descriptors[i]!.digest) },
    }),
  );
  const configDigest = await pushBlob(base, repo, configBlob);
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: configBlob.length,
      },
      layers: descriptors,
    }),
  );
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    body: manifest,
    headers: { 'Content-Type': mediaType },
  });
  if (res.status !== 201) throw new Error(`manifest ${repo}:${tag}: ${res.status} ${await res.text()}`);
  return sha(manifest);
}
