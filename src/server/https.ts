// The HTTPS server's settings and the serving certificate files.
import type { RequestListener } from 'node:http';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { limitConnections } from '../http/connections.js';
import type { Logger } from '../observability/logger.js';
import { CERT_FILES } from '../tls/files.js';

// The API server's webhook client keeps idle connections for 90 s (Go's http.Transport default);
// closing ours later than that avoids racing a request onto a connection we are closing.
const KEEP_ALIVE_TIMEOUT_MS = 120_000;
const HEADERS_TIMEOUT_MS = 10_000;
// Admission webhooks time out after at most 30 s on the API server's side.
const REQUEST_TIMEOUT_MS = 30_000;
// Each open TLS connection holds tens of KiB; the API servers keep far fewer than this.
const MAX_CONNECTIONS = 500;
// Request bodies held at once: dozens of ordinary reviews; a maximal one (19 MiB) runs alone.
export const BODY_BUDGET_BYTES = 12 * 1024 * 1024;

const TLS = { minVersion: 'TLSv1.2' as const };

/** node:https with the timeouts and the connection limit above, serving `pair` until replaced. */
export function httpsServer(
  pair: { cert: string; key: string },
  handler: RequestListener,
  options: { headersTimeoutMs?: number; maxConnections?: number },
): { server: Server; replaceCert(next: { cert: string; key: string }): void } {
  const headersTimeout = options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const server = createServer({ ...pair, ...TLS, handshakeTimeout: headersTimeout }, handler);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = headersTimeout;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  limitConnections(server, {
    firstRequestMs: headersTimeout,
    maxConnections: options.maxConnections ?? MAX_CONNECTIONS,
  });
  return {
    server,
    replaceCert: (next) => server.setSecureContext({ cert: next.cert, key: next.key, ...TLS }),
  };
}

/**
 * `reusePort` (SO_REUSEPORT): several processes listen on one port and the kernel spreads new
 * connections among them, so a webhook on the node's network (hostNetwork) can be replaced on
 * the same node without a moment nobody listens.
 */
export function listen(
  server: Server,
  { port, host, reusePort }: { port: number; host?: string; reusePort?: boolean },
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, ...(host && { host }), ...(reusePort && { reusePort }) }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function servingCertFiles(options: {
  tlsCert?: string;
  tlsKey?: string;
  devCertsDir: string;
  logger: Logger;
}): Promise<{ cert: string; key: string; devCa?: string }> {
  if (options.tlsCert || options.tlsKey) {
    if (!options.tlsCert || !options.tlsKey)
      throw new Error('give both --tls-cert and --tls-key, or neither');
    return { cert: options.tlsCert, key: options.tlsKey };
  }
  const dir = options.devCertsDir;
  // node-forge is loaded only to make dev certificates, never with the cluster's.
  const { ensureCerts } = await import('../tls/certs.js');
  const bundle = await ensureCerts(dir, ['localhost'], ['127.0.0.1', '::1']);
  options.logger.info(
    { dir, created: bundle.created },
    bundle.created ? 'made a development CA and serving certificate' : 'reusing the development certificates',
  );
  return {
    cert: join(dir, CERT_FILES.cert),
    key: join(dir, CERT_FILES.key),
    devCa: join(dir, CERT_FILES.caCert),
  };
}
