// `kata-admission serve`: the HTTPS webhook.
import type { Command } from 'commander';
import { dirname, join } from 'node:path';
import { Option } from 'commander';
import { LOG_LEVELS, createLogger, type LogLevel } from '../../observability/logger.js';
import { startWebhook } from '../../server/webhook.js';
import { clusterAccess, port, type Context } from '../context.js';
import { UsageError } from '../input.js';

export function serveCommand(program: Command, ctx: Context): void {
  program
    .command('serve')
    .description('serve admission reviews over HTTPS (POST /mutate; GET /healthz, /readyz, /metrics)')
    .option('--config <file>', 'config file, watched for changes (default: the embedded default config)')
    .option('--port <n>', 'HTTPS port', port, 8443)
    .option('--host <address>', 'address to listen on (default: all)')
    .option('--tls-cert <file>', 'serving certificate (PEM), reloaded when it changes')
    .option('--tls-key <file>', 'serving key (PEM), reloaded when it changes')
    .option(
      '--dev-certs <dir>',
      'where to make or reuse dev certificates when no --tls-cert is given',
      'certs',
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(LOG_LEVELS)
        .default(ctx.io.env.logLevel ?? 'info'),
    )
    .option(
      '--kubeconfig <file>',
      'cluster access for the self-check, ImageVerdicts and learning (default: in-cluster, when running in a pod)',
    )
    .option(
      '--lease-namespace <name>',
      "the namespace of the learning controller's Lease (the webhook's own)",
      'kata-admission',
    )
    .option(
      '--register [name]',
      'patch the caBundle of this MutatingWebhookConfiguration at startup (default name: kata-admission)',
    )
    .option(
      '--reuse-port',
      "share the port with other kata-admission processes (SO_REUSEPORT), for replicas on the node's network (hostNetwork) replaced on the same node",
    )
    .option(
      '--tls-ca <file>',
      'the CA of the serving certificate, for --register (default: ca.crt next to --tls-cert)',
    )
    .action((options: ServeOptions) => serve(options, ctx));
}

interface ServeOptions {
  config?: string;
  leaseNamespace: string;
  port: number;
  host?: string;
  tlsCert?: string;
  tlsKey?: string;
  devCerts: string;
  logLevel: LogLevel;
  kubeconfig?: string;
  register?: string | true;
  tlsCa?: string;
  reusePort?: boolean;
}

/** Serves until SIGTERM or SIGINT, then shuts down gracefully. */
async function serve(options: ServeOptions, ctx: Context): Promise<void> {
  if (Boolean(options.tlsCert) !== Boolean(options.tlsKey))
    throw new UsageError('give both --tls-cert and --tls-key, or neither');
  const logger = createLogger(options.logLevel);
  const kubeConfig = await clusterAccess(options.kubeconfig, ctx.io.env.inCluster === true);
  if (options.register && !kubeConfig)
    throw new UsageError('--register needs cluster access (--kubeconfig, or running in a pod)');
  const caFile =
    options.tlsCa ??
    (options.tlsCert ? join(dirname(options.tlsCert), 'ca.crt') : join(options.devCerts, 'ca.crt'));
  const webhook = await startWebhook({
    ...(options.config && { configPath: options.config }),
    port: options.port,
    ...(options.host && { host: options.host }),
    ...(options.tlsCert && { tlsCert: options.tlsCert }),
    ...(options.tlsKey && { tlsKey: options.tlsKey }),
    devCertsDir: options.devCerts,
    logger,
    ...(options.reusePort && { reusePort: true }),
    ...(ctx.io.env.hostname && { scannerName: ctx.io.env.hostname }),
    ...(kubeConfig && { kubeConfig, leaseNamespace: options.leaseNamespace }),
    ...(options.register && {
      register: { name: options.register === true ? 'kata-admission' : options.register, caFile },
    }),
  });
  if (webhook.devCaFile) {
    logger.info(
      `try: curl --cacert ${webhook.devCaFile} -H 'Content-Type: application/json' --data @test/fixtures/build-plain.json https://localhost:${webhook.port}/mutate`,
    );
  }
  await new Promise<void>((resolve) => ctx.io.onShutdownSignal(() => void webhook.shutdown().then(resolve)));
  logger.flush();
}
