// The composition root of the server: config, certificates, logs, metrics, HTTP and shutdown are
// made here and handed to each other; nothing below reads the environment or a global.
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { reviewDepsFor, type ReviewDeps } from './admission/review.js';
import { registerCaBundle, runtimeClassProblems } from './cluster/selfcheck.js';
import { loadPolicy, parseConfig } from './config/load.js';
import { pollFiles, type FilePoller } from './files/poll.js';
import { createHandler, type Readiness } from './http/app.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, inspectionMetrics, type Metrics } from './observability/metrics.js';
import { inspectorFor, type ImageInspector } from './images/inspector.js';
import { canonicalJson } from './policy/policy.js';
import type { Policy } from './policy/policy.js';
import { CERT_FILES, ensureCerts } from './tls/certs.js';
import { loadServingCert, type ServingCert } from './tls/serving.js';

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
}

export interface Webhook {
  server: Server;
  port: number;
  metrics: Metrics;
  /** The CA file clients should trust, when the webhook made its own dev certificates. */
  devCaFile?: string;
  policy(): Policy;
  /** Runs the cluster self-check now and returns its problems (none without cluster access). */
  selfCheck(): Promise<string[]>;
  shutdown(): Promise<void>;
}

// The API server's webhook client keeps idle connections for 90 s (Go's http.Transport default);
// closing ours later than that avoids racing a request onto a connection we are closing.
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;
export const HEADERS_TIMEOUT_MS = 10_000;
// Admission webhooks time out after at most 30 s on the API server's side.
export const REQUEST_TIMEOUT_MS = 30_000;

export async function startWebhook(options: WebhookOptions): Promise<Webhook> {
  const { logger } = options;
  const metrics = createMetrics();
  let policy = await loadPolicy(options.configPath);
  metrics.configInfo.set({ hash: policy.hash }, 1);

  const certFiles = await servingCertFiles(options);
  let serving = loadServingCert(await readFile(certFiles.cert, 'utf8'), await readFile(certFiles.key, 'utf8'));
  metrics.certificateExpiry.set(serving.notAfter.getTime() / 1000);
  let draining = false;
  let clusterProblems: string[] = [];

  const readiness = (): Readiness => {
    const problems = [...clusterProblems];
    if (serving.notAfter.getTime() <= Date.now()) problems.push(`serving certificate expired at ${serving.notAfter.toISOString()}`);
    return { ready: problems.length === 0, problems };
  };
  const kubeConfig = options.kubeConfig;
  let checking: Promise<void> = Promise.resolve();
  const checkCluster = () => {
    if (!kubeConfig) return;
    checking = runtimeClassProblems(kubeConfig, policy).then((problems) => {
      if (problems.length > 0) logger.error({ problems }, 'self-check: routed pods would fail; not ready');
      else if (clusterProblems.length > 0) logger.info('self-check: RuntimeClasses agree with the config');
      clusterProblems = problems;
    }, (error: Error) => {
      // An API the webhook cannot reach says nothing about routing: log it, stay ready.
      logger.warn({ err: error.message }, 'self-check: cannot read RuntimeClasses');
    });
  };
  // One inspector per inspection config: its cache survives config reloads that do not touch it.
  let inspector: ImageInspector | undefined;
  let inspectorSettings = '';
  let deps: ReviewDeps;
  const applyPolicy = () => {
    const settings = policy.config.imageInspection;
    const fingerprint = canonicalJson(settings);
    if (fingerprint !== inspectorSettings) {
      inspectorSettings = fingerprint;
      inspector = inspectorFor(settings, inspectionMetrics(metrics));
    }
    deps = reviewDepsFor(policy, inspector);
  };
  applyPolicy();
  const handler = createHandler({ reviewDeps: () => deps, readiness, draining: () => draining, metrics, logger });

  const server = createServer({ cert: serving.cert, key: serving.key, minVersion: 'TLSv1.2' }, handler);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;

  const pollers: FilePoller[] = [];
  if (options.configPath) {
    const configPath = options.configPath;
    pollers.push(pollFiles([configPath], options.configPollMs ?? 2000, ([text]) => {
      const result = parseConfig(text!.toString('utf8'));
      if (!result.ok) {
        metrics.configReloads.inc({ result: 'failure' });
        logger.error({ config: configPath, problems: result.problems, inForce: policy.hash }, 'config change rejected; the last good config stays in force');
        return;
      }
      metrics.configReloads.inc({ result: 'success' });
      if (result.policy.hash === policy.hash) return;
      metrics.configInfo.reset();
      metrics.configInfo.set({ hash: result.policy.hash }, 1);
      logger.info({ config: configPath, from: policy.hash, to: result.policy.hash }, 'config reloaded');
      policy = result.policy;
      applyPolicy();
      checkCluster();
    }, (error) => logger.warn({ config: configPath, err: error.message }, 'cannot read the config file; keeping the config in force'),
    [await readFile(configPath)]));
  }
  pollers.push(pollFiles([certFiles.cert, certFiles.key], options.certPollMs ?? 5000, ([cert, key]) => {
    let next: ServingCert;
    try {
      next = loadServingCert(cert!.toString('utf8'), key!.toString('utf8'));
    } catch (error) {
      metrics.certificateReloads.inc({ result: 'failure' });
      logger.error({ err: (error as Error).message, cert: certFiles.cert }, 'new serving certificate refused; the old one stays in use');
      return;
    }
    server.setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
    serving = next;
    metrics.certificateReloads.inc({ result: 'success' });
    metrics.certificateExpiry.set(next.notAfter.getTime() / 1000);
    logger.info({ serial: next.serialNumber, notAfter: next.notAfter.toISOString() }, 'serving certificate reloaded');
  }, (error) => logger.warn({ err: error.message }, 'cannot read the serving certificate; keeping the one in use'),
  [Buffer.from(serving.cert), Buffer.from(serving.key)]));

  checkCluster();
  const recheck = kubeConfig ? setInterval(checkCluster, options.clusterCheckMs ?? 60_000) : undefined;
  recheck?.unref();
  if (kubeConfig && options.register) {
    const { name, caFile } = options.register;
    const count = await registerCaBundle(kubeConfig, name, await readFile(caFile, 'utf8'));
    logger.info({ webhookConfiguration: name, webhooks: count }, 'registered the caBundle');
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, config: options.configPath ?? '(embedded default)', hash: policy.hash }, 'serving admission reviews');

  let shutdown: Promise<void> | undefined;
  return {
    server,
    port,
    metrics,
    ...(certFiles.devCa && { devCaFile: certFiles.devCa }),
    policy: () => policy,
    selfCheck: async () => {
      checkCluster();
      await checking;
      return clusterProblems;
    },
    shutdown: () => (shutdown ??= (async () => {
      draining = true;
      logger.info('shutting down: not ready, finishing in-flight requests');
      for (const poller of pollers) poller.stop();
      clearInterval(recheck);
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

async function servingCertFiles(options: WebhookOptions): Promise<{ cert: string; key: string; devCa?: string }> {
  if (options.tlsCert || options.tlsKey) {
    if (!options.tlsCert || !options.tlsKey) throw new Error('give both --tls-cert and --tls-key, or neither');
    return { cert: options.tlsCert, key: options.tlsKey };
  }
  const dir = options.devCertsDir;
  const bundle = await ensureCerts(dir, ['localhost'], ['127.0.0.1', '::1']);
  options.logger.info({ dir, created: bundle.created }, bundle.created ? 'made a development CA and serving certificate' : 'reusing the development certificates');
  return { cert: join(dir, CERT_FILES.cert), key: join(dir, CERT_FILES.key), devCa: join(dir, CERT_FILES.caCert) };
}
