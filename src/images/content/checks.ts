// Content verdicts at admission: a stored verdict is used at once; a missing one is queued for a
// scan (bounded workers and queue) and the admission goes on with what the registry config said.
import PQueue from 'p-queue';
import type { ImageVerdict } from '../../policy/decide.js';
import { parseReference } from '../reference.js';
import type { ContentScanner, ContentVerdict, ScanEvents } from './scanner.js';
import type { StoredVerdict, VerdictStore } from './store.js';

/** Events nobody counts (the CLI, tests). */
export const NO_CONTENT_EVENTS: ContentEvents & ScanEvents = {
  scanned: () => {},
  queue: () => {},
  dropped: () => {},
  stored: () => {},
  layerCache: () => {},
  bytes: () => {},
};

export interface ContentEvents {
  scanned(verdict: ContentVerdict): void;
  queue(depth: number): void;
  dropped(): void;
  stored(size: number): void;
}

export interface ContentLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export class ContentChecks {
  private readonly queue: PQueue;
  private readonly queued = new Set<string>();

  constructor(
    readonly store: VerdictStore,
    private readonly scanner: ContentScanner,
    private readonly options: { workers: number; maxQueued: number },
    private readonly events: ContentEvents,
    private readonly logger?: ContentLogger,
  ) {
    this.queue = new PQueue({ concurrency: options.workers });
  }

  /** The stored verdict for the image's digest; without one, a scan is queued. */
  lookup(image: string, digest: string): StoredVerdict | undefined {
    const stored = this.store.get(digest);
    if (stored) this.store.admitted(digest);
    if (this.store.scannable(digest)) this.request(image, digest);
    return stored;
  }

  /** Queues a scan unless one is queued, or the queue is full (the next admission asks again). */
  request(image: string, digest: string): void {
    if (this.queued.has(digest)) return;
    if (this.queued.size >= this.options.maxQueued) return this.events.dropped();
    const ref = parseReference(image);
    if (!ref) return;
    const pinned = `${ref.registry}/${ref.repository}@${digest}`;
    this.queued.add(digest);
    this.events.queue(this.queued.size);
    void this.queue
      .add(() => this.scanNow(pinned, digest))
      .catch((error: unknown) => this.logger?.warn({ digest, error: String(error) }, 'content scan failed'))
      .finally(() => {
        this.queued.delete(digest);
        this.events.queue(this.queued.size);
      });
  }

  /** Scans unless another replica has (or is): claims first. */
  async scanNow(image: string, digest: string): Promise<ContentVerdict | undefined> {
    if (!(await this.store.claim(digest, image))) return undefined;
    const ref = parseReference(image)!;
    const verdict = await this.scanner.scan(ref);
    await this.store.record(digest, image, verdict);
    this.events.scanned(verdict);
    this.events.stored(this.store.size());
    this.logger?.info(
      {
        image,
        digest,
        class: verdict.class,
        outcome: verdict.outcome,
        detail: verdict.detail,
        bytes: verdict.bytes,
      },
      'content scanned',
    );
    return verdict;
  }

  /** Resolves when every queued scan has finished. */
  idle(): Promise<void> {
    return this.queue.onIdle();
  }

  /** Drops the waiting scans. The store is not this object's: a reload hands it to the next one. */
  stop(): void {
    this.queue.clear();
  }
}

/** The image's verdict once content is known: an override names the route; a scan replaces config facts. */
export function withContent(config: ImageVerdict, stored: StoredVerdict | undefined): ImageVerdict {
  const content = stored?.verdict;
  const base =
    content?.outcome === 'scanned' && content.class !== 'unknown'
      ? { class: content.class, detail: `content: ${content.detail}` }
      : content
        ? { ...config, detail: `${config.detail}; content ${content.outcome}: ${content.detail}` }
        : config;
  if (!stored?.override) return base;
  const { route, reason } = stored.override;
  return {
    ...base,
    route,
    detail: `${base.detail}; ImageVerdict override to ${route}${reason ? ` (${reason})` : ''}`,
  };
}
