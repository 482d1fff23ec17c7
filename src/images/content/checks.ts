// Content verdicts at admission: a stored verdict is used at once; a missing one is queued for a
// scan (bounded workers and queue) and the admission goes on with what the registry config said.
import PQueue from 'p-queue';
import type { ImageVerdict } from '../../policy/decide.js';
import { parseReference } from '../reference.js';
import { TokenBuckets, type BucketSettings } from './buckets.js';
import type { ContentScanner, ContentVerdict, ScanEvents } from './scanner.js';
import type { Finding, StoredVerdict, VerdictStore } from './store.js';

/** Events nobody counts (the CLI, tests). */
export const NO_CONTENT_EVENTS: ContentEvents & ScanEvents = {
  scanned: () => {},
  queue: () => {},
  dropped: () => {},
  limited: () => {},
  stored: () => {},
  layerCache: () => {},
  bytes: () => {},
};

export interface ContentEvents {
  scanned(verdict: ContentVerdict): void;
  queue(depth: number): void;
  dropped(): void;
  /** A new scan was not queued: the requesting user or namespace is past its scanRate. */
  limited(by: 'user' | 'namespace'): void;
  stored(size: number): void;
}

/** Who an admission is for: new scans are counted against them; a dry run scans nothing. */
export interface Requester {
  user: string;
  namespace: string;
  dryRun: boolean;
}

export interface CheckOptions {
  workers: number;
  maxQueued: number;
  /** Whether images of this registry are scanned at all (otherRegistries). */
  scans(registry: string): boolean;
  scanRate: { perUser: BucketSettings; perNamespace: BucketSettings };
}

export interface ContentLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export class ContentChecks {
  private readonly workers: PQueue;
  /** One queue per registry, so that one slow registry holds at most all workers but one. */
  private readonly registries = new Map<string, PQueue>();
  private readonly queued = new Set<string>();
  private readonly users: TokenBuckets;
  private readonly namespaces: TokenBuckets;

  constructor(
    readonly store: VerdictStore,
    private readonly scanner: ContentScanner,
    private readonly options: CheckOptions,
    private readonly events: ContentEvents,
    private readonly logger?: ContentLogger,
  ) {
    this.workers = new PQueue({ concurrency: options.workers });
    this.users = new TokenBuckets(options.scanRate.perUser);
    this.namespaces = new TokenBuckets(options.scanRate.perNamespace);
  }

  /** The stored verdict for the image's digest; without one, a scan is queued (never for a dry run). */
  lookup(image: string, digest: string, requester?: Requester): StoredVerdict | undefined {
    const stored = this.store.get(digest);
    if (requester?.dryRun) return stored;
    if (stored) this.store.admitted(digest);
    if (this.store.scannable(digest)) this.request(image, digest, requester);
    return stored;
  }

  /** Queues a scan unless one is queued, the registry is not scanned, the requester is past its rate, or the queue is full. */
  request(image: string, digest: string, requester?: Requester): void {
    if (this.queued.has(digest)) return;
    const ref = parseReference(image);
    if (!ref || !this.options.scans(ref.registry)) return;
    if (requester && !this.withinRate(requester)) return;
    if (this.queued.size >= this.options.maxQueued) return this.events.dropped();
    const pinned = `${ref.registry}/${ref.repository}@${digest}`;
    this.queued.add(digest);
    this.events.queue(this.queued.size);
    void this.registryQueue(ref.registry)
      .add(() => this.workers.add(() => this.scanNow(pinned, digest)))
      .catch((error: unknown) => this.logger?.warn({ digest, error: String(error) }, 'content scan failed'))
      .finally(() => {
        this.queued.delete(digest);
        this.events.queue(this.queued.size);
      });
  }

  private withinRate({ user, namespace }: Requester): boolean {
    const now = Date.now();
    if (!this.users.allows(user, now)) return (void this.events.limited('user'), false);
    if (!this.namespaces.allows(namespace, now)) return (void this.events.limited('namespace'), false);
    this.users.take(user);
    this.namespaces.take(namespace);
    return true;
  }

  private registryQueue(registry: string): PQueue {
    let queue = this.registries.get(registry);
    if (!queue) {
      queue = new PQueue({ concurrency: Math.max(1, this.options.workers - 1) });
      this.registries.set(registry, queue);
      queue.addEventListener('idle', () => this.registries.delete(registry));
    }
    return queue;
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
  async idle(): Promise<void> {
    while (this.queued.size > 0) {
      await Promise.all([...this.registries.values()].map((q) => q.onIdle()));
      await this.workers.onIdle();
    }
  }

  /** Drops the waiting scans. The store is not this object's: a reload hands it to the next one. */
  stop(): void {
    for (const queue of this.registries.values()) queue.clear();
    this.workers.clear();
  }
}

/** The image's verdict once content is known: a scan replaces config facts, and a failure in a sandbox the scan. */
export function withContent(config: ImageVerdict, stored: StoredVerdict | undefined): ImageVerdict {
  const content = stored?.verdict;
  const base =
    content?.outcome === 'scanned' && content.class !== 'unknown'
      ? { class: content.class, detail: `content: ${content.detail}` }
      : content
        ? { ...config, detail: `${config.detail}; content ${content.outcome}: ${content.detail}` }
        : config;
  const learned = learnedFrom(stored?.findings, base);
  return stored?.override ? { ...learned, override: stored.override } : learned;
}

/** A build that failed in a sandbox outweighs a scan that found nothing: the class its failure implies. */
function learnedFrom(findings: Finding[] | undefined, base: ImageVerdict): ImageVerdict {
  const last = findings?.at(-1);
  if (!last || (base.class !== 'ok' && base.class !== 'unknown')) return base;
  return {
    class: last.class,
    detail: `learned: build ${last.pod} failed on ${last.route} (${last.evidence})`,
    learned: { route: last.route },
  };
}
