// One layer's tar stream, read once and summarised: what it adds that matters for Kata (32-bit ELF
// files, release files, the C library), what it removes (whiteouts), and a hash of every path it
// writes (an upper layer's file replaces a lower one). The summary depends on the layer alone, so
// it is cached by the layer's digest and shared by every image built on it.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { ELF_HEAD_BYTES, elf32Machine } from './elf.js';
import { LIBC_VERSION_TEXT, libcKind, RELEASE_FILES } from './release.js';

export type Compression = 'gzip' | 'zstd' | 'none';

export interface LayerSummary {
  /** Regular files whose ELF header is 32-bit x86 or ARM. */
  elf32: string[];
  /** Release files: a regular file's text, or a symlink's target. */
  release: Record<string, { text: string } | { link: string }>;
  /** System C library files and the version they carry ('' when it could not be read). */
  libc: Record<string, string>;
  /** Paths removed from lower layers (`.wh.NAME`), and folders whose lower content is hidden (`.wh..wh..opq`). */
  whiteouts: string[];
  opaque: string[];
  /** FNV-1a hashes of every path the layer writes, sorted: a lower entry at one of them is replaced. */
  paths: Uint32Array;
  /** Uncompressed tar bytes. */
  bytes: number;
}

const MAX_RELEASE_FILE = 64 * 1024;
/** Linux's PATH_MAX: no path longer than this can be executed, so a longer one is a hostile layer. */
const MAX_PATH_BYTES = 4096;

/** What one layer may hold before its scan stops; `unpacked` is shared by the image's layers. */
export interface LayerLimits {
  maxEntries: number;
  maxElf32: number;
  maxWhiteouts: number;
  unpacked: { bytes: number; max: number };
}

const UNLIMITED: LayerLimits = {
  maxEntries: Infinity,
  maxElf32: Infinity,
  maxWhiteouts: Infinity,
  unpacked: { bytes: 0, max: Infinity },
};

/** A layer went past one of its limits: the scan stops (a verdict of `stopped`, not a class). */
export class LayerLimitReached extends Error {
  override name = 'LayerLimitReached';
}
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const RELEASE = new Set<string>(RELEASE_FILES);

/** The media type's compression; undefined for one that is not a layer we can read. */
export function compressionOf(mediaType: string): Compression | undefined {
  if (/[.+]gzip$/.test(mediaType)) return 'gzip';
  if (/\+zstd$/.test(mediaType)) return 'zstd';
  if (/(\.tar|rootfs\.diff\.tar)$/.test(mediaType)) return 'none';
  return undefined;
}

const DECOMPRESSED_CHUNK_BYTES = 256 * 1024;

/** Reads a layer stream to its end. Rejects on a stream that is not valid (compressed) tar. */
export async function summarizeLayer(
  source: Readable,
  compression: Compression,
  signal?: AbortSignal,
  limits: LayerLimits = UNLIMITED,
): Promise<LayerSummary> {
  const tar = extract();
  const summary = new LayerBuilder(limits, (error) => tar.destroy(error));
  tar.on('entry', (header, stream, next) => summary.entry(header, stream as unknown as Readable, next)); // a streamx Readable
  const options = signal ? { signal } : {};
  if (compression === 'none') await pipeline(source, tar, options);
  else {
    // Output buffers of 256 KiB, not zlib's 16 KiB: each buffer is a trip from zlib's thread back to
    // this one, and with the default the trips, not the inflating, set the pace (~2x slower).
    const inflate = { chunkSize: DECOMPRESSED_CHUNK_BYTES };
    const decompress = compression === 'gzip' ? createGunzip(inflate) : createZstdDecompress(inflate);
    await pipeline(source, decompress, tar, options);
  }
  return summary.done();
}

/** A tar path as it will be in the root filesystem: no leading "./" or "/", no trailing "/". */
function normalizePath(name: string): string | undefined {
  const path = name.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
  if (path === '' || path === '.') return undefined;
  return path.split('/').some((s) => s === '..' || s === '.') ? undefined : path;
}

export function pathHash(path: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) hash = Math.imul(hash ^ path.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

class LayerBuilder {
  private readonly summary: Omit<LayerSummary, 'paths'> = {
    elf32: [],
    release: {},
    libc: {},
    whiteouts: [],
    opaque: [],
    bytes: 0,
  };
  private readonly hashes: number[] = [];
  private readonly elf32 = new Set<string>();
  private entries = 0;

  constructor(
    private readonly limits: LayerLimits,
    private readonly stop: (error: Error) => void,
  ) {}

  entry(header: Header, stream: Readable, next: () => void): void {
    const bytes = 512 + Math.ceil((header.size ?? 0) / 512) * 512;
    this.summary.bytes += bytes;
    this.limits.unpacked.bytes += bytes;
    // A stream cut mid-file, or stopped at a limit, errors the entry too; the pipeline reports
    // it, so it must not be thrown here (listen before anything can stop).
    stream.on('error', () => {});
    const over = this.overLimit(header);
    if (over) return this.stop(new LayerLimitReached(over));
    const path = normalizePath(header.name);
    const reader = path === undefined ? undefined : this.readerFor(path, header);
    stream.on('end', () => {
      reader?.end();
      next();
    });
    if (reader) {
      // Most files need only their first bytes: stop listening once the reader has them.
      const data = (chunk: Buffer) => {
        if (reader.data(chunk) === 'done') stream.off('data', data);
      };
      stream.on('data', data);
    }
    stream.resume();
  }

  /** Which limit this entry goes past, counted before anything of it is kept. */
  private overLimit(header: Header): string | undefined {
    const { limits } = this;
    if (++this.entries > limits.maxEntries) return `more than ${limits.maxEntries} entries in one layer`;
    if (limits.unpacked.bytes > limits.unpacked.max)
      return `more than maxUnpackedBytes ${limits.unpacked.max} bytes unpacked`;
    if (header.name.length > MAX_PATH_BYTES || (header.linkname?.length ?? 0) > MAX_PATH_BYTES)
      return `a path longer than ${MAX_PATH_BYTES} bytes`;
    return this.overCounts();
  }

  private overCounts(): string | undefined {
    const { limits, summary } = this;
    if (summary.elf32.length > limits.maxElf32)
      return `more than ${limits.maxElf32} 32-bit ELF files in one layer`;
    if (summary.whiteouts.length + summary.opaque.length > limits.maxWhiteouts)
      return `more than ${limits.maxWhiteouts} whiteouts in one layer`;
    return undefined;
  }

  private readerFor(path: string, header: Header): FileReader | undefined {
    const slash = path.lastIndexOf('/');
    const base = path.slice(slash + 1);
    if (base.startsWith(WHITEOUT)) {
      const dir = path.slice(0, slash + 1);
      if (base === OPAQUE) this.summary.opaque.push(dir.slice(0, -1));
      else this.summary.whiteouts.push(dir + base.slice(WHITEOUT.length));
      return undefined;
    }
    this.hashes.push(pathHash(path));
    if (header.type === 'symlink' && RELEASE.has(path) && header.linkname)
      this.summary.release[path] = { link: header.linkname };
    if (header.type === 'link' && header.linkname) {
      const target = normalizePath(header.linkname);
      if (target !== undefined && this.elf32.has(target)) this.addElf32(path);
    }
    if (header.type !== 'file' && header.type !== 'contiguous-file') return undefined;
    const libc = libcKind(path);
    if (typeof libc === 'object') this.summary.libc[path] = libc.version;
    if (libc === 'content') return this.libcReader(path);
    if (RELEASE.has(path) && (header.size ?? 0) <= MAX_RELEASE_FILE) return this.releaseReader(path);
    return (header.size ?? 0) >= ELF_HEAD_BYTES ? this.elfReader(path) : undefined;
  }

  private addElf32(path: string) {
    this.elf32.add(path);
    this.summary.elf32.push(path);
  }

  /** Keeps only the first bytes: the ELF header. */
  private elfReader(path: string): FileReader {
    let head: Buffer | undefined;
    let done = false;
    const check = () => {
      done = true;
      if (head && elf32Machine(head)) this.addElf32(path);
    };
    return {
      data: (chunk: Buffer) => {
        if (done) return 'done';
        head = head ? Buffer.concat([head, chunk]) : chunk;
        if (head.length >= ELF_HEAD_BYTES) check();
        return done ? 'done' : undefined;
      },
      end: () => done || check(),
    };
  }

  private releaseReader(path: string): FileReader {
    const chunks: Buffer[] = [];
    return {
      data: (chunk: Buffer) => void chunks.push(chunk),
      end: () => void (this.summary.release[path] = { text: Buffer.concat(chunks).toString('utf8') }),
    };
  }

  /** Looks for glibc's version banner across chunk boundaries, holding one chunk's tail at most. */
  private libcReader(path: string): FileReader {
    let tail = '';
    this.summary.libc[path] = '';
    const elf = this.elfReader(path);
    return {
      data: (chunk: Buffer) => {
        elf.data(chunk);
        if (this.summary.libc[path]) return 'done';
        const text = tail + chunk.toString('latin1');
        const match = LIBC_VERSION_TEXT.exec(text);
        if (match) this.summary.libc[path] = match[1]!;
        tail = text.slice(-200);
      },
      end: () => elf.end(),
    };
  }

  done(): LayerSummary {
    const over = this.overCounts();
    if (over) throw new LayerLimitReached(over);
    const paths = Uint32Array.from(this.hashes).sort();
    return { ...this.summary, paths };
  }
}

interface FileReader {
  /** 'done' when the rest of the file is not needed. */
  data(chunk: Buffer): 'done' | undefined | void;
  end(): void;
}
