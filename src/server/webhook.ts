// The composition root of the server: config, certificates, logs, metrics, HTTP and shutdown are
// made here and handed to each other; nothing below reads the environment or a global.
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ClusterSelfCheck } from '../cluster/selfcheck.js';
import { createHandler, type Readiness } from '../http/app.js';
import { ByteBudget } from '../http/budget.js';
import type { ContentChecks } from '../images/content/checks.js';
import type { Logger } from '../observability/logger.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import type { Policy } from '../policy/policy.js';
import { NO_OVERHEADS } from '../policy/mutate/step.js';
import { RotatingSeal } from '../policy/seal.js';
import { PolicyWatcher } from '../policy/watcher.js';
import { ServingCertSource } from '../tls/source.js';
import { reviewDepsSource, verdictStores } from './caches.js';
import { BODY_BUDGET_BYTES, httpsServer, listen, servingCertFiles } from './https.js';

export interface WebhookOptions {
  configPath?: string;
  port: number;
  host?: string;
  /** Serving cert and key files; without them a dev CA and cert are made (or reused) in devCertsDir. */
  tlsCert?: string;
  tlsKey?: string;
  devCertsDir: string;
  logger: Logger;
  configPollMs?: number;
  certPollMs?: number;
  /** How long in-flight requests get after SIGTERM before connections are cut. */
  shutdownTimeoutMs?: number;
  /** Cluster access (in-cluster or --kubeconfig): enables the RuntimeClass self-check. */
  kubeConfig?: KubeConfig;
  clusterCheckMs?: number;
  /** Patch this MutatingWebhookConfiguration's caBundle with `caFile` at startup. */
  register?: { name: string; caFile: string };
  /** A connection that sends no request (or finishes no handshake) this long is closed. */
  headersTimeoutMs?: number;
  maxConnections?: number;
  /** Bytes of request bodies held in memory at once, across requests. */
  bodyBudgetBytes?: number;
  /** Who claims content scans in ImageVerdict objects (the pod's name). */
  scannerName?: string;
  /** Where the learning controller's Lease lives: the webhook's own namespace. */
  leaseNamespace?: string;
  /** Share the port with other processes (SO_REUSEPORT): replicas on the node's network. */
  reusePort?: boolean;
}

export interface Webhook {
  server: Server;
  port: number;
  metrics: Metrics;
  /** The CA file clients should trust, when the webhook made its own dev certificates. */
  devCaFile?: string;
  policy(): Policy;
  /** Content scanning, when the config enables it: its store, and a way to wait for queued scans. */
  content(): ContentChecks | undefined;
  /** Runs the cluster self-check now and returns its problems (none without cluster access). */
  selfCheck(): Promise<string[]>;
  shutdown(): Promise<void>;
}

export async function startWebhook(options: WebhookOptions): Promise<Webhook> {
  const { logger } = options;
  const metrics = createMetrics();
  const stores = verdictStores(options, metrics);
  const seal = new RotatingSeal();
  let cluster: ClusterParts | undefined; // made once the config is loaded; a reload re-runs its check
  const overheads = () => cluster?.selfCheck.overheads() ?? NO_OVERHEADS;
  const review = reviewDepsSource(metrics, stores, logger, seal, overheads);
  const watcher = await PolicyWatcher.start(
    options.configPath,
    options.configPollMs ?? 2000,
    logger,
    metrics,
    (policy) =>
      void review.apply(policy).then(
        () => cluster?.selfCheck.run(),
        (error: Error) => logger.error({ error: error.message }, 'config not applied'),
      ),
  );
  await review.apply(watcher.current());
  const certFiles = await servingCertFiles(options);
  const certs = await ServingCertSource.load(certFiles, logger, metrics);
  seal.rotate(certs.current().key);
  const state = { draining: false };
  const readiness = readinessOf(() => cluster?.selfCheck, certs);
  const server = serving(options, { review, readiness, state, metrics, certs, seal });
  if (options.kubeConfig)
    cluster = await startClusterParts(options, options.kubeConfig, watcher, review, metrics);

  await listen(server, options);
  const port = announce(server, options.configPath, watcher.current(), logger);
  const stop = () => {
    state.draining = true;
    for (const part of [cluster, watcher, review.inspector()?.content, stores, certs]) part?.stop();
  };
  return {
    server,
    port,
    metrics,
    ...(certFiles.devCa && { devCaFile: certFiles.devCa }),
    policy: () => watcher.current(),
    content: () => review.inspector()?.content,
    selfCheck: async () => {
      await cluster?.selfCheck.run();
      return cluster?.selfCheck.problems() ?? [];
    },
    shutdown: shutdownOnce(server, stop, options),
  };
}

/** What runs only with cluster access: the RuntimeClass self-check and learning from failed builds. */
interface ClusterParts {
  selfCheck: ClusterSelfCheck;
  stop(): void;
}

async function startClusterParts(
  options: WebhookOptions,
  kubeConfig: KubeConfig,
  watcher: PolicyWatcher,
  review: ReturnType<typeof reviewDepsSource>,
  metrics: Metrics,
): Promise<ClusterParts> {
  // The Kubernetes client (tens of MiB) is loaded only with cluster access.
  const [{ ClusterSelfCheck, registerCaBundle }, { LearningController }] = await Promise.all([
    import('../cluster/selfcheck.js'),
    import('../cluster/learning/controller.js'),
  ]);
  const selfCheck = new ClusterSelfCheck(kubeConfig, () => watcher.current(), options.logger);
  selfCheck.start(options.clusterCheckMs ?? 60_000);
  const learning = new LearningController(kubeConfig, {
    policy: () => watcher.current(),
    store: () => review.inspector()?.content?.store,
    logger: options.logger,
    metrics,
    identity: options.scannerName ?? 'kata-admission',
    leaseNamespace: options.leaseNamespace ?? 'kata-admission',
  });
  learning.start();
  if (options.register) {
    const { name, caFile } = options.register;
    const count = await registerCaBundle(kubeConfig, name, await readFile(caFile, 'utf8'));
    options.logger.info({ webhookConfiguration: name, webhooks: count }, 'registered the caBundle');
  }
  return { selfCheck, stop: () => (learning.stop(), selfCheck.stop()) };
}

/** Ready while the cluster self-check (once it exists) and the serving certificate have no problem. */
function readinessOf(
  selfCheck: () => ClusterSelfCheck | undefined,
  certs: ServingCertSource,
): () => Readiness {
  return () => {
    const problems = [...(selfCheck()?.problems() ?? []), ...certs.problems()];
    return { ready: problems.length === 0, problems };
  };
}

/** Not ready at once, the reloaders stopped, then in-flight requests finished (or cut at the timeout). */
function shutdownOnce(server: Server, stop: () => void, options: WebhookOptions): () => Promise<void> {
  const { logger } = options;
  return once(async () => {
    logger.info('shutting down: not ready, finishing in-flight requests');
    stop();
    await closeServer(server, options.shutdownTimeoutMs ?? 20_000, logger);
    logger.info('stopped');
  });
}

/** The HTTPS server on the handler, its certificate (and the memory seal) following the files. */
function serving(
  options: WebhookOptions,
  parts: {
    review: ReturnType<typeof reviewDepsSource>;
    readiness: () => Readiness;
    state: { draining: boolean };
    metrics: Metrics;
    certs: ServingCertSource;
    seal: RotatingSeal;
  },
): Server {
  const { review, readiness, state, metrics, certs, seal } = parts;
  const handler = createHandler({
    reviewDeps: review.current,
    readiness,
    draining: () => state.draining,
    metrics,
    logger: options.logger,
    bodyBudget: new ByteBudget(options.bodyBudgetBytes ?? BODY_BUDGET_BYTES),
  });
  const { server, replaceCert } = httpsServer(certs.current(), handler, options);
  certs.watch(options.certPollMs ?? 5000, (next) => {
    replaceCert(next);
    seal.rotate(next.key);
  });
  return server;
}

const once = <T>(run: () => Promise<T>) => {
  let running: Promise<T> | undefined;
  return () => (running ??= run());
};

/** The line operators and tests wait for, and the config's notes; returns the port. */
function announce(server: Server, configPath: string | undefined, policy: Policy, logger: Logger): number {
  const { port, address } = server.address() as AddressInfo;
  logger.info(
    { port, address, config: configPath ?? '(embedded default)', hash: policy.hash },
    'serving admission reviews',
  );
  for (const note of policy.notes) logger.warn({ note }, 'config note');
  return port;
}

/** In-flight requests finish; connections still open after `timeoutMs` are cut. */
async function closeServer(server: Server, timeoutMs: number, logger: Logger): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const timeout = setTimeout(() => {
    logger.warn('shutdown timeout: closing remaining connections');
    server.closeAllConnections();
  }, timeoutMs);
  await closed;
  clearTimeout(timeout);
}
