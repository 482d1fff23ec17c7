// A client for the OCI distribution API over fetch (undici): manifests, indexes and config blobs,
// with anonymous, basic and bearer-token auth (the WWW-Authenticate challenge flow).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Agent, fetch, type Dispatcher } from 'undici';
import { runnablePlatform, type ImageFactsFromRegistry, type Platform } from './classify.js';
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
}

export class RegistryError extends Error {
  override name = 'RegistryError';
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
  private readonly tokens = new Map<string, { token: string; expires: number }>();

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

  /** A blob's bytes as a stream: never buffered whole. */
  async openBlob(ref: ImageReference, digest: string, signal: AbortSignal): Promise<Readable> {
    const res = await this.get(ref, `blobs/${digest}`, 'application/octet-stream, */*', signal);
    if (!res.body) throw new RegistryError(`blob ${digest} has no body`);
    return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
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

  private async manifest(ref: ImageReference, reference: string, signal: AbortSignal) {
    const res = await this.get(ref, `manifests/${reference}`, ACCEPT, signal);
    const body = await readLimited(res, MAX_DOCUMENT_BYTES);
    const digest =
      res.headers.get('docker-content-digest') ?? `sha256:${createHash('sha256').update(body).digest('hex')}`;
    return { digest, document: parseJson(body, `manifest ${reference}`) };
  }

  private async config(ref: ImageReference, manifest: unknown, signal: AbortSignal) {
    const digest = (manifest as { config?: { digest?: unknown } }).config?.digest;
    if (typeof digest !== 'string') throw new RegistryError('the manifest names no config blob');
    const res = await this.get(ref, `blobs/${digest}`, 'application/octet-stream, */*', signal);
    const config = parseJson(await readLimited(res, MAX_DOCUMENT_BYTES), `config ${digest}`) as {
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
      return fetch(url, {
        headers: { Accept: accept, ...(authorization && { Authorization: authorization }) },
        signal,
        ...(endpoint.dispatcher && { dispatcher: endpoint.dispatcher }),
      });
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
      throw new RegistryError(`${ref.registry} answered ${res.status} for ${path}`);
    }
    return res;
  }

  private async authorize(
    challenge: string,
    endpoint: RegistryEndpoint,
    scope: string,
    tokenKey: string,
    signal: AbortSignal,
  ): Promise<string> {
    const basic =
      endpoint.credentials &&
      `Basic ${Buffer.from(`${endpoint.credentials.username}:${endpoint.credentials.password}`).toString('base64')}`;
    if (/^basic\b/i.test(challenge)) {
      if (!basic) throw new RegistryError('the registry wants credentials and none are configured');
      return basic;
    }
    if (!/^bearer\b/i.test(challenge))
      throw new RegistryError(`unsupported auth challenge "${challenge.slice(0, 60)}"`);
    const params = Object.fromEntries(
      [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]),
    );
    if (!params.realm) throw new RegistryError('bearer challenge without realm');
    const tokenUrl = new URL(params.realm);
    if (params.service) tokenUrl.searchParams.set('service', params.service);
    tokenUrl.searchParams.set('scope', params.scope ?? scope);
    const res = await fetch(tokenUrl, {
      headers: basic ? { Authorization: basic } : {},
      signal,
      ...(endpoint.dispatcher && { dispatcher: endpoint.dispatcher }),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(`token endpoint answered ${res.status}`);
    }
    const answer = parseJson(await readLimited(res, 1024 * 1024), 'token') as {
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

async function readLimited(res: Awaited<ReturnType<typeof fetch>>, limit: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > limit) {
    await res.body?.cancel();
    throw new RegistryError(`document of ${declared} bytes is over the ${limit} byte limit`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > limit) throw new RegistryError(`document is over the ${limit} byte limit`);
  return body;
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    const value = JSON.parse(body.toString('utf8'));
    if (value === null || typeof value !== 'object') throw new Error('not an object');
    return value;
  } catch {
    throw new RegistryError(`${what} is not valid JSON`);
  }
}

/** Endpoint settings from config: mirror, scheme, CA, credentials. */
export function makeEndpoint(
  registry: string,
  settings: { insecure?: boolean; ca?: string; mirror?: string; credentials?: Credentials },
): RegistryEndpoint {
  const host = settings.mirror ?? (registry === 'docker.io' ? 'registry-1.docker.io' : registry);
  return {
    baseUrl: `${settings.insecure ? 'http' : 'https'}://${host}`,
    ...(settings.ca && { dispatcher: new Agent({ connect: { ca: settings.ca } }) }),
    ...(settings.credentials && { credentials: settings.credentials }),
  };
}
