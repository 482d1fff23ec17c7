// What Screwdriver's executor talks to besides the API server: the Screwdriver API it reports a
// build's status to, as a small server on loopback that answers every call and keeps the list.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

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

type ExecutorClass = new (options: object) => { start(config: object): Promise<unknown> };
const Executor = createRequire(import.meta.url)('screwdriver-executor-k8s') as ExecutorClass;
/** A build token as Screwdriver's API signs them (the executor only passes it to run.sh). */
export const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJwclBhcmVudEpvYklkIjoxfQ.x';

export interface BuildStart {
  sdApi: SdApi;
  /** The API server's host:port, and the executor's ServiceAccount token for it. */
  apiServer: string;
  token: string;
  namespace: string;
  id: number;
  container: string;
  /** The executor's `kubernetes` settings beyond the API server and namespace. */
  kubernetes?: object;
  annotations?: object;
  launcher?: { image: string; version: string };
}

/** Starts one build of pipeline 3001's `main` job with Screwdriver's real executor. */
export async function startBuild(build: BuildStart): Promise<void> {
  const api = build.sdApi.url;
  const executor = new Executor({
    ecosystem: { api, store: api, ui: api },
    prefix: 'beta-',
    ...(build.launcher && { launchImage: build.launcher.image, launchVersion: build.launcher.version }),
    kubernetes: {
      token: build.token,
      host: build.apiServer,
      jobsNamespace: build.namespace,
      ...build.kubernetes,
    },
  });
  await executor.start({
    buildId: build.id,
    eventId: 77,
    jobId: 12,
    jobName: 'main',
    container: build.container,
    token: JWT,
    annotations: build.annotations ?? {},
    apiUri: api,
    pipeline: { id: 3001, name: 'screwdriver-cd/kata-demo', scmContext: 'github:github.com' },
  });
}
