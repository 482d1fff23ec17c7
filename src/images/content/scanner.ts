// Scans one image's layers from its registry: each layer streamed once (gzip, zstd or plain tar),
// summarised, cached by layer digest; the summaries applied in order give the image's content facts.
import { Transform } from 'node:stream';
import { LRUCache } from 'lru-cache';
import picomatch from 'picomatch';
import type { ImageVerdict } from '../../policy/decide.js';
import type { ImageReference } from '../reference.js';
import { registryErrorText, type LayerDescriptor, type RegistryClient } from '../registry.js';
import { DigestMismatch } from '../digest.js';
import { classifyContent } from './classify.js';
import { compressionOf, LayerLimitReached, summarizeLayer, type LayerSummary } from './layer.js';
import { applyLayers, type ContentFacts } from './merge.js';

export interface ScanLimits {
  /** Compressed bytes of all layers (declared, and read); a larger image is not read on. */
  maxImageBytes: number;
  maxImageSeconds: number;
  maxUnpackedBytes: number;
  maxEntriesPerLayer: number;
  maxElf32PerLayer: number;
  maxWhiteoutsPerLayer: number;
  /** Globs (no leading "/") of 32-bit ELF files that do not count. */
  ignore: string[];
  layerCacheBytes: number;
}

/** What a scan learned. `stopped`: a cap ended it; `failed`: the registry could not be read (try again later). */
export interface ContentVerdict extends ImageVerdict {
  /** The digest the reference resolved to (absent when the manifest could not be read). */
  digest?: string;
  outcome: 'scanned' | 'stopped' | 'failed';
  os?: string;
  glibc?: string;
  elf32Count: number;
  /** A few 32-bit ELF paths, as evidence. */
  evidence: string[];
  /** Compressed bytes read from the registry (cached layers cost none). */
  bytes: number;
  seconds: number;
}

export interface ScanEvents {
  layerCache(result: 'hit' | 'miss'): void;
  bytes(count: number): void;
  /** A layer was read (or found cached): for progress on a long scan. */
  layer?(image: string, index: number, count: number, bytes: number): void;
  /** A registry served bytes that do not hash to their digest. */
  mismatch?(): void;
}

const EVIDENCE = 5;

export class ContentScanner {
  private readonly layers: LRUCache<string, LayerSummary>;
  private readonly inflight = new Map<string, Promise<LayerSummary>>();
  private readonly ignored: (path: string) => boolean;

  constructor(
    private readonly client: RegistryClient,
    private readonly limits: ScanLimits,
    private readonly events: ScanEvents,
  ) {
    this.layers = new LRUCache({ maxSize: limits.layerCacheBytes, sizeCalculation: summarySize });
    this.ignored = limits.ignore.length > 0 ? picomatch(limits.ignore, { dot: true }) : () => false;
  }

  /** Never throws: what could not be read is an `unknown` verdict saying why. */
  async scan(ref: ImageReference): Promise<ContentVerdict> {
    const started = performance.now();
    const signal = AbortSignal.timeout(this.limits.maxImageSeconds * 1000);
    const read = { bytes: 0 };
    let digest: string | undefined;
    const finish = (verdict: Omit<ContentVerdict, 'bytes' | 'seconds'>): ContentVerdict => ({
      ...(digest && { digest }),
      ...verdict,
      bytes: read.bytes,
      seconds: (performance.now() - started) / 1000,
    });
    let layers: LayerDescriptor[];
    try {
      ({ digest, layers } = await this.client.layers(ref, signal));
    } catch (error) {
      if (error instanceof DigestMismatch) this.events.mismatch?.();
      return finish(unknown('failed', `could not read the manifest: ${message(error)}`));
    }
    const total = layers.reduce((sum, l) => sum + l.size, 0);
    if (total > this.limits.maxImageBytes)
      return finish(
        unknown(
          'stopped',
          `not read: its layers are ${total} bytes, over maxImageBytes ${this.limits.maxImageBytes}`,
        ),
      );
    const summaries: LayerSummary[] = [];
    const unpacked = { bytes: 0, max: this.limits.maxUnpackedBytes };
    for (const [index, layer] of layers.entries()) {
      try {
        summaries.push(await this.layer(ref, layer, signal, read, unpacked));
        this.events.layer?.(ref.repository, index + 1, layers.length, read.bytes);
      } catch (error) {
        if (signal.aborted)
          return finish(unknown('stopped', `stopped after maxImageSeconds ${this.limits.maxImageSeconds}`));
        return finish(this.failure(layer, error));
      }
    }
    return finish(verdictOf(await applyLayers(summaries, this.ignored)));
  }

  /** A layer that could not be summarised: a limit (stopped), bad bytes (final), or the registry (retried). */
  private failure(layer: LayerDescriptor, error: unknown): Omit<ContentVerdict, 'bytes' | 'seconds'> {
    const what = `layer ${layer.digest.slice(0, 19)}: ${message(error)}`;
    if (error instanceof LayerLimitReached) return unknown('stopped', what);
    if (error instanceof DigestMismatch) {
      this.events.mismatch?.();
      return unknown('failed', what);
    }
    return unknown(error instanceof UnreadableLayer ? 'scanned' : 'failed', what);
  }

  /** One read per layer digest at a time; a cached layer is not read again. */
  private layer(
    ref: ImageReference,
    layer: LayerDescriptor,
    signal: AbortSignal,
    read: { bytes: number },
    unpacked: { bytes: number; max: number },
  ): Promise<LayerSummary> {
    const cached = this.layers.get(layer.digest);
    this.events.layerCache(cached ? 'hit' : 'miss');
    if (cached) {
      unpacked.bytes += cached.bytes;
      if (unpacked.bytes > unpacked.max)
        return Promise.reject(
          new LayerLimitReached(`more than maxUnpackedBytes ${unpacked.max} bytes unpacked`),
        );
      return Promise.resolve(cached);
    }
    let running = this.inflight.get(layer.digest);
    if (!running) {
      running = this.readLayer(ref, layer, signal, read, unpacked).finally(() =>
        this.inflight.delete(layer.digest),
      );
      this.inflight.set(layer.digest, running);
    }
    return running;
  }

  private async readLayer(
    ref: ImageReference,
    layer: LayerDescriptor,
    signal: AbortSignal,
    read: { bytes: number },
    unpacked: { bytes: number; max: number },
  ): Promise<LayerSummary> {
    const compression = compressionOf(layer.mediaType);
    if (!compression)
      throw new UnreadableLayer(`media type "${layer.mediaType}" is not a layer format read here`);
    // The blob stream verifies the digest: its error (a mismatch, or a cut connection) reaches the
    // pipeline before the layer's end, so a summary of unverified bytes is never cached.
    const blob = await this.client.openBlob(ref, layer.digest, layer.size, signal);
    const { maxImageBytes } = this.limits;
    const counted = blob.pipe(
      new Transform({
        transform: (chunk: Buffer, _encoding, done) => {
          read.bytes += chunk.length;
          this.events.bytes(chunk.length);
          if (read.bytes > maxImageBytes)
            return done(new LayerLimitReached(`more than maxImageBytes ${maxImageBytes} bytes read`));
          done(null, chunk);
        },
      }),
    );
    let cut: Error | undefined; // the registry's side failed: not the layer's bytes
    blob.on('error', (error) => counted.destroy((cut = error)));
    try {
      const summary = await summarizeLayer(counted, compression, signal, {
        maxEntries: this.limits.maxEntriesPerLayer,
        maxElf32: this.limits.maxElf32PerLayer,
        maxWhiteouts: this.limits.maxWhiteoutsPerLayer,
        unpacked,
      });
      this.layers.set(layer.digest, summary);
      return summary;
    } catch (error) {
      if (cut || signal.aborted || error instanceof LayerLimitReached) throw cut ?? error;
      throw new UnreadableLayer(message(error));
    }
  }
}

/** The layer's bytes arrived but are not gzip, zstd or tar: the verdict is final, not retried. */
class UnreadableLayer extends Error {
  override name = 'UnreadableLayer';
}

function verdictOf(facts: ContentFacts): Omit<ContentVerdict, 'bytes' | 'seconds'> {
  return {
    ...classifyContent(facts),
    outcome: 'scanned',
    ...(facts.os && { os: `${facts.os.id} ${facts.os.version}`.trim() }),
    ...(facts.glibc && { glibc: facts.glibc.version }),
    elf32Count: facts.elf32.length,
    evidence: facts.elf32.slice(0, EVIDENCE).map((p) => `/${p}`),
  };
}

function unknown(
  outcome: ContentVerdict['outcome'],
  detail: string,
): Omit<ContentVerdict, 'bytes' | 'seconds'> {
  return { class: 'unknown', detail, outcome, elf32Count: 0, evidence: [] };
}

const message = registryErrorText;

/** Bytes a cached summary holds, roughly: what bounds the layer cache. */
function summarySize(summary: LayerSummary): number {
  let size = 256 + summary.paths.byteLength;
  for (const path of summary.elf32) size += 40 + path.length * 2;
  for (const path of [...summary.whiteouts, ...summary.opaque]) size += 40 + path.length * 2;
  for (const entry of Object.values(summary.release)) size += 64 + JSON.stringify(entry).length * 2;
  return size + Object.keys(summary.libc).length * 100;
}
