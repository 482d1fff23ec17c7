// What Screwdriver's executor talks to besides the API server: the Screwdriver API it reports a
// build's status to, as a small server on loopback that answers every call and keeps the list.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SdApi {
  url: string;
  /** `METHOD /path` of every call, in order. */
  updates: string[];
  server: Server;
}

export async function startSdApi(): Promise<SdApi> {
  const updates: string[] = [];
  const server = createServer((req, res) => {
    updates.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, updates, server };
}
