// Real HTTPS clients for the server tests: trust only a given CA, check the host name.
import { request, type Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface HttpsAnswer {
  status: number;
  body: string;
  json: any;
  serial: string;
  headers: Record<string, string | string[] | undefined>;
}

export function httpsRequest(
  port: number,
  ca: string,
  options: {
    path?: string;
    method?: string;
    body?: string;
    servername?: string;
    agent?: Agent | false;
    headers?: Record<string, string>;
  } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: options.path ?? '/mutate',
        method: options.method ?? 'POST',
        ca,
        servername: options.servername ?? 'localhost',
        agent: options.agent ?? false,
        headers: { 'Content-Type': 'application/json', ...options.headers },
      },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode!, body, json, serial, headers: res.headers });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true, or fails after `timeoutMs`. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}
