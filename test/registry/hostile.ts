// A hostile registry: a small real HTTP server speaking the distribution API, whose every answer
// the test chooses (wrong digests, endless bodies, redirects, trickles). It listens on loopback.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pack } from 'tar-stream';

export type Handler = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface Hostile {
  host: string;
  /** Request paths, in order, with the Authorization header each carried. */
  requests: { path: string; authorization?: string }[];
  /** Bytes written in answers, counted as they leave. */
  written: { bytes: number };
  route(path: string, handler: Handler): void;
  close(): Promise<void>;
}

export async function startHostile(address = '127.0.0.1'): Promise<Hostile> {
  const routes = new Map<string, Handler>();
  const requests: Hostile['requests'] = [];
  const written = { bytes: 0 };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push({ path, ...(req.headers.authorization && { authorization: req.headers.authorization }) });
    const write = res.write.bind(res);
    res.write = ((chunk: Buffer, ...rest: never[]) => {
      written.bytes += chunk.length;
      return write(chunk, ...rest);
    }) as typeof res.write;
    const handler = routes.get(path.split('?')[0]!);
    if (!handler) return void res.writeHead(404).end();
    void Promise.resolve(handler(req, res)).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `${address}:${port}`,
    requests,
    written,
    route: (path, handler) => void routes.set(path, handler),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** An OCI manifest (and its config) for these layer blobs. */
export function manifestOf(layers: { data: Buffer; mediaType: string; size?: number }[]) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {} }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256(config),
        size: config.length,
      },
      layers: layers.map((l) => ({
        mediaType: l.mediaType,
        digest: sha256(l.data),
        size: l.size ?? l.data.length,
      })),
    }),
  );
  return { manifest, digest: sha256(manifest), config };
}

/** Serves an image: its manifest under a tag and its digest, its config and its layers. */
export function serveImage(
  hostile: Hostile,
  repo: string,
  image: { manifest: Buffer; config: Buffer; layers: Buffer[] },
  options: { tag?: string; manifestDigest?: string } = {},
) {
  const send =
    (body: Buffer, headers: Record<string, string> = {}): Handler =>
    (_req, res) => {
      res.writeHead(200, { 'Content-Length': body.length, ...headers });
      res.end(body);
    };
  const digest = options.manifestDigest ?? sha256(image.manifest);
  const manifest = send(image.manifest, {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
    'Docker-Content-Digest': digest,
  });
  hostile.route(`/v2/${repo}/manifests/${digest}`, manifest);
  if (options.tag) hostile.route(`/v2/${repo}/manifests/${options.tag}`, manifest);
  const config = JSON.parse(image.manifest.toString()).config.digest as string;
  hostile.route(`/v2/${repo}/blobs/${config}`, send(image.config));
  const layers = JSON.parse(image.manifest.toString()).layers as { digest: string }[];
  layers.forEach((l, i) => hostile.route(`/v2/${repo}/blobs/${l.digest}`, send(image.layers[i]!)));
}

/** A tar archive built entry by entry (tar-stream): for layers GNU tar would take long to lay out. */
export async function tarEntries(
  entries: Iterable<{ name: string; data?: Buffer; pax?: Record<string, string> }>,
): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (c) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => archive.on('end', () => resolve()));
  for (const { name, data = Buffer.alloc(0), pax } of entries)
    archive.entry({ name, size: data.length, mode: 0o755, ...(pax && { pax }) }, data);
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}
