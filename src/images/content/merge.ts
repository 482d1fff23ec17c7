// Layers applied in order, as a container runtime's snapshotter would: each layer's whiteouts and
// opaque folders hide what lower layers had, and a path it writes replaces a lower file. A layer's
// content is the submitter's: the work is linear in the paths' length (whiteouts are found by the
// hashes of each path's folders, not by comparing every path with every whiteout) and yields to
// the event loop every few milliseconds, so admissions are answered while a hostile image merges.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
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

/** How long the merge may hold the event loop before it yields. */
const SLICE_MS = 4;

export async function applyLayers(
  layers: readonly LayerSummary[],
  ignored: (path: string) => boolean,
): Promise<ContentFacts> {
  const live = new Map<string, Entry>();
  let slice = performance.now();
  for (const layer of layers) {
    const hides = hider(layer);
    let checked = 0;
    for (const path of live.keys()) {
      if (hides(path)) live.delete(path);
      if (++checked % 256 === 0 && performance.now() - slice > SLICE_MS) {
        await yieldToEventLoop();
        slice = performance.now();
      }
    }
    const elf32 = new Set(layer.elf32);
    for (const path of elf32) live.set(path, { elf32: true });
    for (const [path, release] of Object.entries(layer.release)) live.set(path, { release });
    // A libc that is also 32-bit ELF stays counted as 32-bit; its version is kept beside it.
    for (const [path, version] of Object.entries(layer.libc))
      if (!elf32.has(path)) live.set(path, { libc: version });
  }
  const elf32 = [...live.entries()]
    .filter(([path, entry]) => 'elf32' in entry && !ignored(path))
    .map(([path]) => path)
    .sort();
  const os = osRelease(live);
  const glibc = newestLibc(live);
  return { elf32, ...(os && { os }), ...(glibc && { glibc }) };
}

/**
 * Whether the layer hides a lower path: the path or one of its folders is whited out, one of its
 * folders is opaque, or the layer writes the path itself. Each folder of the path is looked up by
 * its hash (FNV-1a, built as the path is read once), confirmed by comparing text on a hit.
 */
function hider(layer: LayerSummary): (path: string) => boolean {
  const whiteouts = hashed(layer.whiteouts);
  const opaque = hashed(layer.opaque);
  const rootOpaque = layer.opaque.includes('');
  const folders = whiteouts.size > 0 || opaque.size > 0;
  return (path) => {
    if (rootOpaque) return true;
    if (folders) {
      let hash = 0x811c9dc5;
      for (let i = 0; i < path.length; i++) {
        const code = path.charCodeAt(i);
        if (code === 47 /* "/" */ && (matches(whiteouts, hash, path, i) || matches(opaque, hash, path, i)))
          return true;
        hash = Math.imul(hash ^ code, 0x01000193);
      }
      if (matches(whiteouts, hash, path, path.length)) return true;
    }
    return includes(layer.paths, pathHash(path));
  };
}

function hashed(paths: readonly string[]): Map<number, string[]> {
  const byHash = new Map<number, string[]>();
  for (const path of paths) {
    const hash = pathHash(path);
    const same = byHash.get(hash);
    if (same) same.push(path);
    else byHash.set(hash, [path]);
  }
  return byHash;
}

/** Is path[0, end) one of the paths whose hash is `state`? */
function matches(byHash: Map<number, string[]>, state: number, path: string, end: number): boolean {
  if (byHash.size === 0) return false;
  const candidates = byHash.get(state >>> 0);
  return !!candidates?.some((c) => c.length === end && path.startsWith(c));
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
