// A client for the OCI distribution API over fetch (undici): manifests, indexes and config blobs,
// with anonymous, basic and bearer-token auth (the WWW-Authenticate challenge flow). Nothing a
// registry says is taken on trust: every document and blob is fetched by digest and hashed, every
// body is capped as it arrives, redirects and token realms go only where the config allows.
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { Agent, fetch, type Dispatcher, type Response } from 'undici';
import { runnablePlatform, type ImageFactsFromRegistry, type Platform } from './classify.js';
import { digestOf, verifyBytes, VerifyingStream } from './digest.js';
import type { ImageReference } from './reference.js';

export interface Credentials {
  username: string;
  password: string;
}

/** How to reach one registry, as configured (mirror, CA, insecure, credentials). */
export interface RegistryEndpoint {
  /** Base URL requests go to, e.g. https://registry-1.docker.io */
  baseUrl: string;
  dispatcher?: Dispatcher;
  credentials?: Credentials;
  /** Other hosts (host[:port]) a redirect may lead to: the registry's blob storage. */
  blobHosts: readonly string[];
  /** Token realms (URL prefixes) besides the registry's own host that may receive its credentials. */
  tokenRealms: readonly string[];
}

export class RegistryError extends Error {
  override name = 'RegistryError';
}

/** What to check when a registry connection fails this way (the setting that usually fixes it). */
const HINTS: [RegExp, string][] = [
  [
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|unable to get local issuer/i,
    'a private CA? give it as caFile for this registry',
  ],
  [/WRONG_VERSION_NUMBER|EPROTO|packet length too long/i, 'a plain-http registry? set insecure: true for it'],
  [/ECONNREFUSED/, 'nothing listens there: check the host, port and mirror'],
  [/ENOTFOUND|EAI_AGAIN/, 'the name does not resolve from here'],
];

/** An error from a registry call as one line: the underlying code and message (fetch hides them in `cause`), with a hint. */
export function registryErrorText(error: unknown): string {
  const e = error as Error & { code?: string; cause?: { code?: string; message?: string } };
  const cause = e.cause?.code
    ? `${e.cause.code}${e.cause.message ? `: ${e.cause.message}` : ''}`
    : e.cause?.message;
  const base = cause ?? `${e.code && !e.message.includes(e.code) ? `${e.code}: ` : ''}${e.message}`;
  const hint = HINTS.find(([pattern]) => pattern.test(base))?.[1];
  return hint ? `${base} (${hint})` : base;
}

const INDEX_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];
const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
const ACCEPT = [...INDEX_TYPES, ...MANIFEST_TYPES].join(', ');
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
const MAX_TOKEN_BYTES = 1024 * 1024;
const MAX_REDIRECTS = 3;

export interface LayerDescriptor {
  digest: string;
  size: number;
  mediaType: string;
}

export interface FetchedImage {
  /** Digest of the manifest or index the reference resolved to. */
  digest: string;
  facts: ImageFactsFromRegistry;
}

export class RegistryClient {
  // Bounded: the registries an image names are the submitter's choice.
  private readonly tokens = new LRUCache<string, { token: string; expires: number }>({ max: 1000 });

  constructor(
    private readonly endpointFor: (registry: string) => RegistryEndpoint,
    private readonly onRequest: (registry: string) => void = () => {},
  ) {}

  /** Resolves the reference and reads the facts that classify it. Throws RegistryError. */
  async fetchImage(ref: ImageReference, signal: AbortSignal): Promise<FetchedImage> {
    const resolved = await this.resolve(ref, signal);
    const { digest, platforms } = resolved;
    if (!resolved.manifest) return { digest, facts: { platforms } };
    const config = await this.config(ref, resolved.manifest, signal);
    return { digest, facts: { platforms: platforms.length > 0 ? platforms : [config.platform], config } };
  }

  /** The layers of the manifest a 64-bit Linux node would run, bottom first. Throws RegistryError. */
  async layers(
    ref: ImageReference,
    signal: AbortSignal,
  ): Promise<{ digest: string; layers: LayerDescriptor[] }> {
    const { digest, manifest } = await this.resolve(ref, signal);
    if (!manifest) throw new RegistryError('no linux/amd64 or linux/arm64 image to read');
    const layers = (manifest as { layers?: unknown }).layers;
    if (!Array.isArray(layers)) throw new RegistryError('the manifest lists no layers');
    return {
      digest,
      layers: layers.map((l: { digest?: unknown; size?: unknown; mediaType?: unknown }, i) => {
        if (typeof l.digest !== 'string' || typeof l.size !== 'number')
          throw new RegistryError(`layer ${i} has no digest or size`);
        return {
          digest: l.digest,
          size: l.size,
          mediaType: typeof l.mediaType === 'string' ? l.mediaType : '',
        };
      }),
    };
  }

  /**
   * A blob's bytes as a stream, never buffered whole, that errors (DigestMismatch) past `size`
   * bytes or at its end unless the bytes hash to `digest`.
   */
  async openBlob(ref: ImageReference, digest: string, size: number, signal: AbortSignal): Promise<Readable> {
    const verifying = new VerifyingStream(digest, size, `blob ${digest.slice(0, 19)}`);
    const res = await this.get(ref, `blobs/${digest}`, 'application/octet-stream, */*', signal);
    if (!res.body) throw new RegistryError(`blob ${digest} has no body`);
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    body.on('error', (error) => verifying.destroy(error));
    return body.pipe(verifying);
  }

  /** The reference's digest, the platforms an index offers, and the runnable platform's manifest. */
  private async resolve(ref: ImageReference, signal: AbortSignal) {
    const top = await this.manifest(ref, ref.digest ?? ref.tag!, signal);
    const doc = top.document as { manifests?: { digest: string; platform?: Platform }[] };
    if (!Array.isArray(doc.manifests)) return { digest: top.digest, platforms: [], manifest: top.document };
    const platforms = doc.manifests
      .map((m) => m.platform)
      .filter((p): p is Platform => !!p && typeof p.architecture === 'string' && p.os !== 'unknown');
    const runnable = runnablePlatform(platforms);
    if (!runnable) return { digest: top.digest, platforms };
    const entry = doc.manifests.find((m) => m.platform === runnable)!;
    const child = await this.manifest(ref, entry.digest, signal);
    return { digest: top.digest, platforms, manifest: child.document };
  }

  /**
   * A manifest by tag or digest. By digest, the bytes must hash to it; by tag, the digest is the
   * hash of the bytes (a Docker-Content-Digest header that disagrees is a mismatch, not a fact).
   */
  private async manifest(ref: ImageReference, reference: string, signal: AbortSignal) {
    const res = await this.get(ref, `manifests/${reference}`, ACCEPT, signal);
    const body = await readLimited(res, MAX_DOCUMENT_BYTES);
    const what = `manifest ${reference.slice(0, 80)}`;
    let digest: string;
    if (reference.includes(':')) {
      verifyBytes(body, reference, what);
      digest = reference;
    } else {
      const header = res.headers.get('docker-content-digest');
      if (header) verifyBytes(body, header, what);
      digest = digestOf(body);
    }
    return { digest, document: parseJson(body, what) };
  }

  private async config(ref: ImageReference, manifest: unknown, signal: AbortSignal) {
    const digest = (manifest as { config?: { digest?: unknown } }).config?.digest;
    if (typeof digest !== 'string') throw new RegistryError('the manifest names no config blob');
    const res = await this.get(ref, `blobs/${digest}`, 'application/octet-stream, */*', signal);
    const body = await readLimited(res, MAX_DOCUMENT_BYTES);
    verifyBytes(body, digest, `config ${digest.slice(0, 19)}`);
    const config = parseJson(body, `config ${digest}`) as {
      architecture?: unknown;
      os?: unknown;
      variant?: unknown;
      config?: { Labels?: Record<string, string> | null };
      history?: { created_by?: string }[];
    };
    if (typeof config.architecture !== 'string' || typeof config.os !== 'string')
      throw new RegistryError('the config names no architecture or os');
    return {
      platform: {
        os: config.os,
        architecture: config.architecture,
        ...(typeof config.variant === 'string' && { variant: config.variant }),
      },
      labels: config.config?.Labels ?? {},
      history: (config.history ?? []).map((h) => h.created_by ?? '').filter(Boolean),
    };
  }

  private async get(ref: ImageReference, path: string, accept: string, signal: AbortSignal) {
    const endpoint = this.endpointFor(ref.registry);
    const url = `${endpoint.baseUrl}/v2/${ref.repository}/${path}`;
    const scope = `repository:${ref.repository}:pull`;
    const tokenKey = `${endpoint.baseUrl} ${scope}`;
    const send = (authorization?: string) => {
      this.onRequest(ref.registry);
      return this.follow(
        url,
        { Accept: accept, ...(authorization && { Authorization: authorization }) },
        endpoint,
        signal,
      );
    };
    const cached = this.tokens.get(tokenKey);
    let res = await send(cached && cached.expires > Date.now() ? `Bearer ${cached.token}` : undefined);
    if (res.status === 401) {
      await res.body?.cancel();
      const authorization = await this.authorize(
        res.headers.get('www-authenticate') ?? '',
        endpoint,
        scope,
        tokenKey,
        signal,
      );
      res = await send(authorization);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(`${hostOf(endpoint.baseUrl)} answered ${res.status} for ${path.slice(0, 90)}`);
    }
    return res;
  }

  /**
   * A GET that follows redirects only to the registry's own host or a configured blob host, and
   * never with credentials: a redirect is the registry choosing where the webhook connects next.
   */
  private async follow(
    url: string,
    headers: Record<string, string>,
    endpoint: RegistryEndpoint,
    signal: AbortSignal,
  ): Promise<Response> {
    const allowed = new Set([hostOf(endpoint.baseUrl), ...endpoint.blobHosts]);
    let target = new URL(url);
    let sent = headers;
    for (let hop = 0; ; hop++) {
      const res = await fetch(target, {
        headers: sent,
        signal,
        redirect: 'manual',
        ...(endpoint.dispatcher && { dispatcher: endpoint.dispatcher }),
      });
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) return res;
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS)
        throw new RegistryError(`more than ${MAX_REDIRECTS} redirects from ${target.host}`);
      const next = new URL(location, target);
      if (!allowed.has(next.host) || !schemeAllowed(next, endpoint))
        throw new RegistryError(
          `${target.host} redirected to ${next.protocol}//${next.host}, which is not the registry nor one of its blobHosts`,
        );
      target = next;
      sent = { Accept: headers.Accept! };
    }
  }

  private async authorize(
    challenge: string,
    endpoint: RegistryEndpoint,
    scope: string,
    tokenKey: string,
    signal: AbortSignal,
  ): Promise<string> {
    const basic = basicAuth(endpoint);
    if (/^basic\b/i.test(challenge)) {
      if (!basic) throw new RegistryError('the registry wants credentials and none are configured');
      return basic;
    }
    const tokenUrl = bearerTokenUrl(challenge, endpoint, scope);
    // Credentials go only to the registry's own host or a realm the config names for it.
    const trusted =
      tokenUrl.host === hostOf(endpoint.baseUrl) ||
      endpoint.tokenRealms.some((realm) => tokenUrl.href.startsWith(realm));
    const res = await this.follow(
      tokenUrl.href,
      { Accept: 'application/json', ...(basic && trusted && { Authorization: basic }) },
      endpoint,
      signal,
    );
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(`token endpoint ${tokenUrl.host} answered ${res.status}`);
    }
    const answer = parseJson(await readLimited(res, MAX_TOKEN_BYTES), 'token') as {
      token?: string;
      access_token?: string;
      expires_in?: number;
    };
    const token = answer.token ?? answer.access_token;
    if (!token) throw new RegistryError('token endpoint gave no token');
    this.tokens.set(tokenKey, {
      token,
      expires: Date.now() + Math.max(10, (answer.expires_in ?? 60) - 10) * 1000,
    });
    return `Bearer ${token}`;
  }
}

function basicAuth({ credentials }: RegistryEndpoint): string | undefined {
  if (!credentials) return undefined;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

/** Where a bearer challenge says to ask for a token, for this scope; refused unless https (or insecure). */
function bearerTokenUrl(challenge: string, endpoint: RegistryEndpoint, scope: string): URL {
  if (!/^bearer\b/i.test(challenge))
    throw new RegistryError(`unsupported auth challenge "${challenge.slice(0, 60)}"`);
  const params = Object.fromEntries(
    [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]),
  );
  if (!params.realm) throw new RegistryError('bearer challenge without realm');
  let tokenUrl: URL;
  try {
    tokenUrl = new URL(params.realm);
  } catch {
    throw new RegistryError(`bearer realm "${params.realm.slice(0, 80)}" is not a URL`);
  }
  if (!schemeAllowed(tokenUrl, endpoint))
    throw new RegistryError(
      `bearer realm ${tokenUrl.origin} is not https (plain http only for a registry configured insecure)`,
    );
  if (params.service) tokenUrl.searchParams.set('service', params.service);
  tokenUrl.searchParams.set('scope', params.scope ?? scope);
  return tokenUrl;
}

/** The body, read no further than `limit` bytes whatever the headers say (chunked or not). */
async function readLimited(res: Response, limit: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > limit) {
    await res.body?.cancel();
    throw new RegistryError(`document of ${declared} bytes is over the ${limit} byte limit`);
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res.body ?? []) {
    length += (chunk as Uint8Array).byteLength;
    if (length > limit) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(`document is over the ${limit} byte limit`);
    }
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks, length);
}

const hostOf = (url: string) => new URL(url).host;

/** https always; plain http only towards a registry configured insecure (served over http). */
const schemeAllowed = (url: URL, endpoint: RegistryEndpoint) =>
  url.protocol === 'https:' || (url.protocol === 'http:' && endpoint.baseUrl.startsWith('http:'));

function parseJson(body: Buffer, what: string): unknown {
  try {
    const value = JSON.parse(body.toString('utf8'));
    if (value === null || typeof value !== 'object') throw new Error('not an object');
    return value;
  } catch {
    throw new RegistryError(`${what} is not valid JSON`);
  }
}

/** Endpoint settings from config: mirror, scheme, CA, credentials, blob hosts, token realms. */
export function makeEndpoint(
  registry: string,
  settings: {
    insecure?: boolean;
    ca?: string;
    mirror?: string;
    credentials?: Credentials;
    blobHosts?: readonly string[];
    tokenRealms?: readonly string[];
    /** A read that gets no bytes for this long fails (a registry trickling or stalled). */
    readTimeoutMs?: number;
  },
): RegistryEndpoint {
  const host = settings.mirror ?? (registry === 'docker.io' ? 'registry-1.docker.io' : registry);
  const timeout = settings.readTimeoutMs ?? 30_000;
  return {
    baseUrl: `${settings.insecure ? 'http' : 'https'}://${host}`,
    dispatcher: new Agent({
      headersTimeout: timeout,
      bodyTimeout: timeout,
      ...(settings.ca && { connect: { ca: settings.ca } }),
    }),
    ...(settings.credentials && { credentials: settings.credentials }),
    blobHosts: settings.blobHosts ?? [],
    tokenRealms: settings.tokenRealms ?? [],
  };
}
