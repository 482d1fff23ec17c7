// Layers applied in order, as a container runtime's snapshotter would: each layer's whiteouts and
// opaque folders hide what lower layers had, and a path it writes replaces a lower file.
import type { LayerSummary } from './layer.js';
import { pathHash } from './layer.js';
import { compareVersions, parseRelease, RELEASE_FILES, type OsRelease } from './release.js';

export interface ContentFacts {
  os?: OsRelease;
  /** The newest system glibc found, and where. */
  glibc?: { version: string; path: string };
  /** 32-bit ELF files in the final filesystem (ignore globs applied), sorted. */
  elf32: string[];
}

type Entry = { elf32: true } | { release: { text: string } | { link: string } } | { libc: string };

export function applyLayers(
  layers: readonly LayerSummary[],
  ignored: (path: string) => boolean,
): ContentFacts {
  const live = new Map<string, Entry>();
  for (const layer of layers) {
    for (const path of live.keys()) if (hiddenBy(layer, path)) live.delete(path);
    for (const path of layer.elf32) live.set(path, { elf32: true });
    for (const [path, release] of Object.entries(layer.release)) live.set(path, { release });
    // A libc that is also 32-bit ELF stays counted as 32-bit; its version is kept beside it.
    for (const [path, version] of Object.entries(layer.libc))
      if (!layer.elf32.includes(path)) live.set(path, { libc: version });
  }
  const elf32 = [...live.entries()]
    .filter(([path, entry]) => 'elf32' in entry && !ignored(path))
    .map(([path]) => path)
    .sort();
  const os = osRelease(live);
  const glibc = newestLibc(live);
  return { elf32, ...(os && { os }), ...(glibc && { glibc }) };
}

function hiddenBy(layer: LayerSummary, path: string): boolean {
  for (const dir of layer.opaque) if (dir === '' || path.startsWith(`${dir}/`)) return true;
  for (const gone of layer.whiteouts) if (path === gone || path.startsWith(`${gone}/`)) return true;
  return includes(layer.paths, pathHash(path));
}

function includes(sorted: Uint32Array, value: number): boolean {
  let low = 0;
  let high = sorted.length - 1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid] === value) return true;
    if (sorted[mid]! < value) low = mid + 1;
    else high = mid - 1;
  }
  return false;
}

function osRelease(live: Map<string, Entry>): OsRelease | undefined {
  for (const file of RELEASE_FILES) {
    const text = releaseText(live, file);
    const parsed = text === undefined ? undefined : parseRelease(file, text);
    if (parsed) return parsed;
  }
  return undefined;
}

/** A release file's text, following symlinks inside the image (e.g. /etc/os-release -> ../usr/lib/os-release). */
function releaseText(live: Map<string, Entry>, file: string, hops = 0): string | undefined {
  const entry = live.get(file);
  if (!entry || !('release' in entry)) return undefined;
  if ('text' in entry.release) return entry.release.text;
  if (hops >= 4) return undefined;
  const link = entry.release.link;
  const base = link.startsWith('/') ? [] : file.split('/').slice(0, -1);
  for (const part of link.split('/')) {
    if (part === '..') base.pop();
    else if (part !== '.' && part !== '') base.push(part);
  }
  return releaseText(live, base.join('/'), hops + 1);
}

function newestLibc(live: Map<string, Entry>): ContentFacts['glibc'] {
  let best: ContentFacts['glibc'];
  for (const [path, entry] of live) {
    if (!('libc' in entry) || !entry.libc) continue;
    if (!best || compareVersions(entry.libc, best.version) > 0) best = { version: entry.libc, path };
  }
  return best;
}
