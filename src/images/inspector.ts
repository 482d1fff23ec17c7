// Image inspection for one admission: cached, coalesced, parallel, bounded by a deadline, and
// guarded by a per-registry circuit breaker. Never throws: what cannot be learned is `unknown`.
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import type { ImageInspectionConfig, RegistrySettings } from '../config/schema.js';
import type { ImageFacts, ImageVerdict } from '../policy/decide.js';
import { classifyImage, type LegacyGlibcRule } from './classify.js';
import {
  ContentChecks,
  withContent,
  type ContentEvents,
  type ContentLogger,
  type Requester,
} from './content/checks.js';
import { ContentScanner, type ScanEvents } from './content/scanner.js';
import { DigestMismatch, isVerifiableDigest } from './digest.js';
import type { VerdictStore } from './content/store.js';
import { parseReference, type ImageReference } from './reference.js';
import {
  makeEndpoint,
  RegistryClient,
  registryErrorText,
  type Credentials,
  type RegistryEndpoint,
} from './registry.js';

export interface InspectionEvents {
  cache(result: 'hit' | 'miss' | 'negative'): void;
  lookup(registry: string, seconds: number, ok: boolean): void;
  registryRequest(registry: string): void;
  /** A registry served bytes that do not hash to their digest. */
  mismatch?(): void;
}

const NO_EVENTS: InspectionEvents = { cache: () => {}, lookup: () => {}, registryRequest: () => {} };

// Tags move; digests do not. A tag's digest is re-resolved after this long at the latest.
const TAG_TTL_MS = 60_000;
const BREAKER_FAILURES = 5;
const BREAKER_OPEN_MS = 30_000;

export class ImageInspector {
  private readonly verdicts: LRUCache<string, ImageVerdict>;
  private readonly tags: LRUCache<string, string>;
  private readonly failures: LRUCache<string, ImageVerdict> | undefined;
  private readonly inflight = new Map<string, Promise<ImageVerdict>>();
  // Bounded: registry names come from the pods' image references.
  private readonly breakers = new LRUCache<string, { failures: number; openUntil: number }>({ max: 1000 });
  private readonly rules: LegacyGlibcRule[];
  private readonly client: RegistryClient;

  constructor(
    private readonly config: ImageInspectionConfig,
    endpointFor: (registry: string) => RegistryEndpoint,
    private readonly events: InspectionEvents = NO_EVENTS,
    /** Content scanning: stored verdicts by digest, scans queued for the rest. */
    readonly content?: ContentChecks,
  ) {
    const ttl = (seconds: number) => (seconds > 0 ? { ttl: seconds * 1000 } : {});
    this.verdicts = new LRUCache({ max: config.maxEntries, ...ttl(config.cacheTtlSeconds) });
    this.tags = new LRUCache({
      max: config.maxEntries,
      ttl: Math.min(TAG_TTL_MS, Math.max(1, config.cacheTtlSeconds * 1000)),
    });
    this.failures =
      config.negativeCacheTtlSeconds > 0
        ? new LRUCache({ max: config.maxEntries, ttl: config.negativeCacheTtlSeconds * 1000 })
        : undefined;
    this.rules = config.legacyGlibc.map((r) =>
      'label' in r
        ? { label: r.label, pattern: new RegExp(r.pattern, 'i') }
        : { history: new RegExp(r.history, 'i') },
    );
    this.client = new RegistryClient(endpointFor, (registry) =>
      events.registryRequest(registryLabel(config, registry)),
    );
  }

  /** Verdicts for these images within the configured budget; new scans are counted against the requester. */
  async inspect(images: string[], requester?: Requester): Promise<ImageFacts> {
    const unique = [...new Set(images)];
    const facts = new Map<string, ImageVerdict>();
    const pending: Promise<void>[] = [];
    for (const image of unique) {
      const cached = this.cached(image);
      if (cached) facts.set(image, cached);
      else pending.push(this.lookup(image).then((v) => void facts.set(image, v)));
    }
    if (pending.length > 0) await this.within(pending, unique, facts);
    return this.content ? this.withContent(facts, this.content, requester) : facts;
  }

  /** Config verdicts with what the content says, where a content verdict is stored. */
  private withContent(
    facts: Map<string, ImageVerdict>,
    content: ContentChecks,
    requester: Requester | undefined,
  ): ImageFacts {
    for (const [image, verdict] of facts) {
      const digest = this.digestOf(image);
      if (digest === undefined || !isVerifiableDigest(digest)) continue;
      const judged = withContent(verdict, content.lookup(image, digest, requester));
      facts.set(image, image.includes('@') ? judged : { ...judged, digest });
    }
    return facts;
  }

  private async within(pending: Promise<void>[], unique: string[], facts: Map<string, ImageVerdict>) {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.config.timeoutMs);
    });
    await Promise.race([Promise.all(pending), deadline]);
    clearTimeout(timer);
    for (const image of unique) {
      if (!facts.has(image))
        facts.set(image, {
          class: 'unknown',
          detail: `no answer within the ${this.config.timeoutMs} ms budget`,
        });
    }
  }

  /** The digest as written, without parseReference's regexes: this runs on every admission. */
  private digestOf(image: string): string | undefined {
    return image.includes('@') ? image.slice(image.indexOf('@') + 1) : this.tags.get(image);
  }

  private cached(image: string): ImageVerdict | undefined {
    const failure = this.failures?.get(image);
    if (failure) {
      this.events.cache('negative');
      return failure;
    }
    const digest = this.digestOf(image);
    const verdict = digest === undefined ? undefined : this.verdicts.get(digest);
    this.events.cache(verdict ? 'hit' : 'miss');
    return verdict;
  }

  /** One lookup per image at a time: concurrent admissions of the same image share it. */
  private lookup(image: string): Promise<ImageVerdict> {
    let running = this.inflight.get(image);
    if (!running) {
      running = this.fetchVerdict(image).finally(() => this.inflight.delete(image));
      this.inflight.set(image, running);
    }
    return running;
  }

  private async fetchVerdict(image: string): Promise<ImageVerdict> {
    const ref = parseReference(image);
    if (!ref) return this.failed(image, 'not a valid image reference');
    if (!(ref.registry in this.config.registries) && this.config.otherRegistries === 'skip')
      return this.failed(
        image,
        `registry ${ref.registry} is not in imageInspection.registries (otherRegistries: skip), so it was not asked`,
      );
    const label = registryLabel(this.config, ref.registry);
    const breaker = this.breakers.get(ref.registry) ?? { failures: 0, openUntil: 0 };
    this.breakers.set(ref.registry, breaker);
    if (breaker.openUntil > Date.now())
      return {
        class: 'unknown',
        detail: `registry ${ref.registry} is failing; not asked again until ${new Date(breaker.openUntil).toISOString()}`,
      };
    const started = performance.now();
    try {
      // The fetch may outlive one admission's budget: it still fills the cache for the next.
      const fetched = await this.client.fetchImage(
        ref,
        AbortSignal.timeout(Math.max(5000, this.config.timeoutMs * 4)),
      );
      const verdict = classifyImage(fetched.facts, this.rules);
      breaker.failures = 0;
      this.events.lookup(label, (performance.now() - started) / 1000, true);
      if (!ref.digest) this.tags.set(image, fetched.digest);
      this.verdicts.set(ref.digest ?? fetched.digest, verdict);
      return verdict;
    } catch (error) {
      breaker.failures++;
      if (breaker.failures >= BREAKER_FAILURES) breaker.openUntil = Date.now() + BREAKER_OPEN_MS;
      this.events.lookup(label, (performance.now() - started) / 1000, false);
      if (error instanceof DigestMismatch) this.events.mismatch?.();
      return this.failed(image, describe(error, ref));
    }
  }

  private failed(image: string, detail: string): ImageVerdict {
    const verdict: ImageVerdict = { class: 'unknown', detail };
    this.failures?.set(image, verdict);
    return verdict;
  }
}

/** The metrics label of a registry: its configured name, else `other` (names are the submitter's). */
function registryLabel(config: ImageInspectionConfig, registry: string): string {
  return registry in config.registries ? registry : 'other';
}

function describe(error: unknown, ref: ImageReference): string {
  const e = error as Error;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `${ref.registry} did not answer in time`;
  return `${ref.registry}: ${registryErrorText(error)}`;
}

/** Reads a dockerconfigjson (an imagePullSecret's form) for one registry's credentials. */
function credentialsFrom(path: string, registry: string): Credentials | undefined {
  const file = JSON.parse(readFileSync(path, 'utf8')) as {
    auths?: Record<string, { auth?: string; username?: string; password?: string }>;
  };
  const auths = file.auths ?? {};
  const entry =
    auths[registry] ??
    auths[`https://${registry}`] ??
    auths[`http://${registry}`] ??
    (registry === 'docker.io' ? auths['https://index.docker.io/v1/'] : undefined);
  if (!entry) return undefined;
  if (entry.username !== undefined && entry.password !== undefined)
    return { username: entry.username, password: entry.password };
  if (!entry.auth) return undefined;
  const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** What content scanning needs from the composition root: where verdicts live, what to count. */
export interface ContentParts {
  store: VerdictStore;
  events: ContentEvents & ScanEvents;
  logger?: ContentLogger;
}

/** The inspector a config asks for: none when inspection is off; content scanning when enabled. */
export function inspectorFor(
  config: ImageInspectionConfig,
  events?: InspectionEvents,
  content?: ContentParts,
): ImageInspector | undefined {
  if (!config.enabled) return undefined;
  const endpointFor = endpointsFor(config);
  const checks =
    content && config.content.enabled ? contentChecksFor(config, endpointFor, content, events) : undefined;
  return new ImageInspector(config, endpointFor, events, checks);
}

function contentChecksFor(
  inspection: ImageInspectionConfig,
  endpointFor: (registry: string) => RegistryEndpoint,
  parts: ContentParts,
  events?: InspectionEvents,
): ContentChecks {
  const config = inspection.content;
  const client = new RegistryClient(endpointFor, (registry) =>
    events?.registryRequest(registryLabel(inspection, registry)),
  );
  const scanner = new ContentScanner(client, config, parts.events);
  const scans = (registry: string) => registry in inspection.registries || config.otherRegistries === 'scan';
  return new ContentChecks(parts.store, scanner, { ...config, scans }, parts.events, parts.logger);
}

/** Endpoints for the config's registries, reading CA and credential files once (they are mounted Secrets). */
export function endpointsFor(config: ImageInspectionConfig): (registry: string) => RegistryEndpoint {
  // Bounded, and each evicted endpoint's connections closed: unnamed registries come from pods.
  const endpoints = new LRUCache<string, RegistryEndpoint>({
    max: 256,
    dispose: (endpoint) => void (endpoint.dispatcher as { close?: () => Promise<void> }).close?.(),
  });
  return (registry: string) => {
    let endpoint = endpoints.get(registry);
    if (!endpoint) {
      const settings: Partial<RegistrySettings> = config.registries[registry] ?? {};
      const mirrorSettings: Partial<RegistrySettings> = settings.mirror
        ? (config.registries[settings.mirror] ?? {})
        : settings;
      endpoint = makeEndpoint(registry, {
        insecure: settings.insecure || mirrorSettings.insecure,
        ...(settings.caFile && { ca: readFileSync(settings.caFile, 'utf8') }),
        ...(settings.mirror && { mirror: settings.mirror }),
        blobHosts: settings.blobHosts ?? [],
        tokenRealms: settings.tokenRealms ?? [],
        ...(settings.dockerConfigJson && {
          credentials: credentialsFrom(settings.dockerConfigJson, registry),
        }),
      });
      endpoints.set(registry, endpoint);
    }
    return endpoint;
  };
}

/** An inspector of registry config alone, whatever the config's `enabled` says (tests, bench). */
export function createInspector(config: ImageInspectionConfig, events?: InspectionEvents): ImageInspector {
  return new ImageInspector(config, endpointsFor(config), events);
}
