// The composition root of the server: config, certificates, logs, metrics, HTTP and shutdown are
// made here and handed to each other; nothing below reads the environment or a global.
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { reviewDepsFor, type ReviewDeps } from './admission/review.js';
import { ClusterSelfCheck, registerCaBundle } from './cluster/selfcheck.js';
import { PolicyWatcher } from './policy/watcher.js';
import { createHandler, type Readiness } from './http/app.js';
import { ByteBudget } from './http/budget.js';
import { limitConnections } from './http/connections.js';
import type { ContentChecks } from './images/content/checks.js';
import { inspectorFor, type ImageInspector } from './images/inspector.js';
import type { Logger } from './observability/logger.js';
import { ClusterVerdictStore } from './images/content/cluster-store.js';
import type { ContentScanningConfig } from './config/schema.js';
import { MemoryVerdictStore, storeTimes, type VerdictStore } from './images/content/store.js';
import { contentMetrics, createMetrics, inspectionMetrics, type Metrics } from './observability/metrics.js';
import { canonicalJson } from './kube/json.js';
import type { Policy } from './policy/policy.js';
import { RotatingSeal } from './policy/seal.js';
import { CERT_FILES, ensureCerts } from './tls/certs.js';
import { ServingCertSource } from './tls/source.js';

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

export async function startWebhook(options: WebhookOptions): Promise<Webhook> {
  const { logger } = options;
  const metrics = createMetrics();
  const stores = verdictStores(options, metrics);
  const seal = new RotatingSeal();
  const review = reviewDepsSource(metrics, stores, logger, seal);
  let selfCheck: ClusterSelfCheck | undefined; // made once the config is loaded; a reload re-runs it
  const watcher = await PolicyWatcher.start(
    options.configPath,
    options.configPollMs ?? 2000,
    logger,
    metrics,
    (policy) => {
      review.apply(policy);
      void selfCheck?.run();
    },
  );
  review.apply(watcher.current());
  const certFiles = await servingCertFiles(options);
  const certs = await ServingCertSource.load(certFiles, logger, metrics);
  seal.rotate(certs.current().key);
  if (options.kubeConfig)
    selfCheck = new ClusterSelfCheck(options.kubeConfig, () => watcher.current(), logger);
  let draining = false;

  const readiness = (): Readiness => {
    const problems = [...(selfCheck?.problems() ?? []), ...certs.problems()];
    return { ready: problems.length === 0, problems };
  };
  const bodyBudget = new ByteBudget(options.bodyBudgetBytes ?? BODY_BUDGET_BYTES);
  const handler = createHandler({
    reviewDeps: review.current,
    readiness,
    draining: () => draining,
    metrics,
    logger,
    bodyBudget,
  });
  const headersTimeout = options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const tls = { minVersion: 'TLSv1.2' as const };
  const server = createServer(
    { cert: certs.current().cert, key: certs.current().key, ...tls, handshakeTimeout: headersTimeout },
    handler,
  );
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = headersTimeout;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  limitConnections(server, {
    firstRequestMs: headersTimeout,
    maxConnections: options.maxConnections ?? MAX_CONNECTIONS,
  });
  certs.watch(options.certPollMs ?? 5000, (next) => {
    server.setSecureContext({ cert: next.cert, key: next.key, ...tls });
    seal.rotate(next.key);
  });

  selfCheck?.start(options.clusterCheckMs ?? 60_000);
  if (options.kubeConfig && options.register) {
    const { name, caFile } = options.register;
    const count = await registerCaBundle(options.kubeConfig, name, await readFile(caFile, 'utf8'));
    logger.info({ webhookConfiguration: name, webhooks: count }, 'registered the caBundle');
  }

  await listen(server, options.port, options.host);
  const { port, address } = server.address() as AddressInfo;
  logger.info(
    { port, address, config: options.configPath ?? '(embedded default)', hash: watcher.current().hash },
    'serving admission reviews',
  );
  for (const note of watcher.current().notes) logger.warn({ note }, 'config note');

  let shutdown: Promise<void> | undefined;
  return {
    server,
    port,
    metrics,
    ...(certFiles.devCa && { devCaFile: certFiles.devCa }),
    policy: () => watcher.current(),
    content: () => review.inspector()?.content,
    selfCheck: async () => {
      await selfCheck?.run();
      return selfCheck?.problems() ?? [];
    },
    shutdown: () =>
      (shutdown ??= (async () => {
        draining = true;
        logger.info('shutting down: not ready, finishing in-flight requests');
        watcher.stop();
        review.inspector()?.content?.stop();
        stores.stop();
        certs.stop();
        selfCheck?.stop();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        const timeout = setTimeout(() => {
          logger.warn('shutdown timeout: closing remaining connections');
          server.closeAllConnections();
        }, options.shutdownTimeoutMs ?? 20_000);
        await closed;
        clearTimeout(timeout);
        logger.info('stopped');
      })()),
  };
}

/**
 * The review's dependencies for the policy in force. One inspector per inspection config: its cache
 * survives config reloads that do not touch it.
 */
function reviewDepsSource(
  metrics: Metrics,
  stores: { of(config: ContentScanningConfig): VerdictStore },
  logger: Logger,
  seal: RotatingSeal,
) {
  let inspector: ImageInspector | undefined;
  let inspectorSettings = '';
  let deps: ReviewDeps | undefined;
  return {
    current: () => deps!,
    apply(policy: Policy) {
      const config = policy.config.imageInspection;
      const fingerprint = canonicalJson(config);
      if (fingerprint !== inspectorSettings) {
        inspectorSettings = fingerprint;
        inspector?.content?.stop();
        const events = contentMetrics(metrics);
        const content = config.content.enabled
          ? { store: stores.of(config.content), events, logger }
          : undefined;
        inspector = inspectorFor(config, inspectionMetrics(metrics), content);
      }
      deps = reviewDepsFor(policy, inspector, seal);
    },
    inspector: () => inspector,
  };
}

/**
 * Where content verdicts live: ImageVerdict objects with cluster access, else memory. One store
 * while its times stay the same, so a config reload does not forget what was scanned.
 */
function verdictStores(options: WebhookOptions, metrics: Metrics) {
  let store: { times: string; store: VerdictStore } | undefined;
  const of = (config: ContentScanningConfig): VerdictStore => {
    const times = storeTimes(config);
    if (store?.times === canonicalJson(times)) return store.store;
    store?.store.stop();
    const onChange = (size: number) => metrics.contentVerdicts.set(size);
    const made = options.kubeConfig
      ? new ClusterVerdictStore(options.kubeConfig, {
          ...times,
          scanner: options.scannerName ?? 'kata-admission',
          flushMs: Math.min(3_600_000, times.forgetAfterMs / 10),
          onChange,
          onError: (error, what) =>
            options.logger.warn({ what, error: String(error) }, 'ImageVerdict store: API call failed'),
        })
      : new MemoryVerdictStore(times, 'local', Math.min(3_600_000, times.forgetAfterMs / 10));
    store = { times: canonicalJson(times), store: made };
    return made;
  };
  return { of, stop: () => store?.store.stop() };
}

function listen(server: Server, port: number, host: string | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function servingCertFiles(
  options: WebhookOptions,
): Promise<{ cert: string; key: string; devCa?: string }> {
  if (options.tlsCert || options.tlsKey) {
    if (!options.tlsCert || !options.tlsKey)
      throw new Error('give both --tls-cert and --tls-key, or neither');
    return { cert: options.tlsCert, key: options.tlsKey };
  }
  const dir = options.devCertsDir;
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
