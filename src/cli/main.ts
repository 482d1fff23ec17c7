// The `kata-admission` command line. Exit codes: 0 ok, 1 runtime error, 2 usage or invalid input.
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { reviewAdmission, reviewDepsFor, type ReviewDeps } from '../admission/review.js';
import { ConfigError, loadConfig, loadPolicy } from '../policy/load.js';
import { helmValuesText, kustomizationText, manifestText, renderManifests } from '../cluster/manifests.js';
import { inspectorFor } from '../images/inspector.js';
import { LOG_LEVELS, createLogger, type LogLevel } from '../observability/logger.js';
import { isDnsLabel } from '../kube/labels.js';
import type { Pod } from '../kube/pod.js';
import type { Policy } from '../policy/policy.js';
import { ensureCerts, serviceDnsNames } from '../tls/certs.js';
import { startWebhook } from '../webhook.js';
import { ClusterVerdictStore } from '../images/content/cluster-store.js';
import { MemoryVerdictStore, storeTimes } from '../images/content/store.js';
import { explanation, reviewForPod, storedExplanation } from './explain.js';
import { commandVerdictStore, scanImages, scanText } from './scan.js';
import { NO_CONTENT_EVENTS } from '../images/content/checks.js';
import { livePodRef, readDocument, readLivePod, UsageError } from './input.js';

/** The offline commands inspect images exactly as the server would, when the config enables it. */
function offlineReviewDeps(policy: Policy): ReviewDeps {
  return reviewDepsFor(policy, inspectorFor(policy.config.imageInspection));
}

/**
 * explain's inspector: content verdicts from the cluster (--kubeconfig) or from memory; with
 * `scan`, the pod's images are scanned first, so the answer is the one a later build would get.
 */
async function explainDeps(
  policy: Policy,
  review: unknown,
  options: { kubeconfig?: string; scan?: boolean },
) {
  const config = policy.config.imageInspection;
  if (!config.enabled || !config.content.enabled) return { deps: offlineReviewDeps(policy), stop: () => {} };
  const kubeConfig = clusterAccess(options.kubeconfig, false);
  const store = kubeConfig
    ? commandVerdictStore(kubeConfig, config.content, 'explain')
    : new MemoryVerdictStore(storeTimes(config.content));
  if (store instanceof ClusterVerdictStore) await store.synced;
  const inspector = inspectorFor(config, undefined, { store, events: NO_CONTENT_EVENTS })!;
  const deps = reviewDepsFor(policy, inspector);
  if (options.scan) {
    await reviewAdmission(review, deps);
    await inspector.content!.idle();
  }
  return { deps, stop: () => store.stop() };
}

function clusterAccess(kubeconfig: string | undefined, inCluster: boolean): KubeConfig | undefined {
  if (!kubeconfig && !inCluster) return undefined;
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

export interface Io {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Defaults the process environment provides (read by the entry point, nowhere else). */
  env: { logLevel?: string; inCluster?: boolean; hostname?: string };
  /** Calls `handler` once on SIGTERM or SIGINT. */
  onShutdownSignal(handler: () => void): void;
}

/** The package's version, from the package.json beside dist/ (also in the container image). */
function version(): string {
  return (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

export async function run(argv: string[], io: Io): Promise<number> {
  let exitCode = 0;
  const program = new Command('kata-admission')
    .description('Routes CI build pods into Kata Containers at admission time')
    .version(version(), '--version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError(false);

  program
    .command('review')
    .description('answer one AdmissionReview (JSON or YAML) exactly as the server would')
    .option('--config <file>', 'config file (default: the embedded default config)')
    .argument('[file]', 'AdmissionReview file, or - for standard input', '-')
    .action(async (file: string, options: { config?: string }) => {
      const policy = await loadPolicy(options.config);
      const document = await readDocument(file, io.stdin);
      if ((document as { kind?: unknown } | null)?.kind === 'Pod') {
        throw new UsageError(
          'review takes an AdmissionReview, got a bare Pod: use `kata-admission explain` for a Pod',
        );
      }
      const outcome = await reviewAdmission(document, offlineReviewDeps(policy));
      if (!outcome.ok) throw new UsageError(outcome.error);
      io.stdout.write(JSON.stringify(outcome.review, null, 2) + '\n');
    });

  program
    .command('explain')
    .description('show the route, the reason and the changes for one pod')
    .option('--config <file>', 'config file (default: the embedded default config)')
    .option(
      '--kubeconfig <file>',
      'read content verdicts (ImageVerdict objects), and a live pod, from this cluster',
    )
    .option('-n, --namespace <ns>', 'the namespace of a live pod given as pod/NAME')
    .option('--scan', "scan the pod's images' content first (imageInspection.content.enabled)")
    .option('--offline', 'contact no registry: decide as if image inspection were off')
    .argument(
      '<pod>',
      'Pod (or AdmissionReview) as YAML or JSON, - for standard input, or a live pod: NAMESPACE/NAME or pod/NAME',
    )
    .action(
      async (
        file: string,
        options: {
          config?: string;
          kubeconfig?: string;
          namespace?: string;
          scan?: boolean;
          offline?: boolean;
        },
      ) => {
        const policy = await loadPolicy(options.config);
        const live = livePodRef(file, options.namespace);
        if (live && !options.kubeconfig)
          throw new UsageError(`${file} is not a file; reading it from a cluster needs --kubeconfig`);
        const document = live
          ? await readLivePod(clusterAccess(options.kubeconfig, false)!, live)
          : await readDocument(file, io.stdin);
        const review = reviewForPod(document, policy);
        if (options.offline && (options.scan || options.kubeconfig))
          throw new UsageError('--offline contacts nothing: it does not go with --scan or --kubeconfig');
        if (!options.offline && policy.config.imageInspection.enabled)
          io.stderr.write(
            "note: image inspection is on, so the images' registries are asked (--offline: none)\n",
          );
        const { deps, stop } = options.offline
          ? { deps: reviewDepsFor(policy), stop: () => {} }
          : await explainDeps(policy, review, options);
        const outcome = await reviewAdmission(review, deps).finally(stop);
        if (!outcome.ok) throw new UsageError(outcome.error);
        const pod = (review as { request?: { object?: Pod } }).request?.object;
        io.stdout.write(
          pod && outcome.kind === 'patched' && policy.routeOf(pod)
            ? storedExplanation(outcome, pod, policy)
            : explanation(outcome, pod, policy),
        );
        if (outcome.kind === 'denied') exitCode = 2;
      },
    );

  program
    .command('scan')
    .description("read images' layers now: print class, route and evidence for each")
    .option('--config <file>', 'config file (registries, caps, ignore globs, class routes)')
    .option('--from <file>', 'also scan the images listed in this file, one a line')
    .option('--json', 'print JSON lines')
    .option('--kubeconfig <file>', 'cluster to --write the verdicts to')
    .option('--write', 'store the verdicts as ImageVerdict objects (needs --kubeconfig)')
    .argument('[image...]', 'image references')
    .action(
      async (
        images: string[],
        options: { config?: string; from?: string; json?: boolean; kubeconfig?: string; write?: boolean },
      ) => {
        const policy = await loadPolicy(options.config);
        const listed = options.from
          ? readFileSync(options.from, 'utf8')
              .split('\n')
              .map((l) => l.trim())
              .filter((l) => l && !l.startsWith('#'))
          : [];
        const all = [...images, ...listed];
        if (all.length === 0) throw new UsageError('name at least one image, or --from FILE');
        if (options.write && !options.kubeconfig) throw new UsageError('--write needs --kubeconfig');
        const write = options.write ? clusterAccess(options.kubeconfig, false) : undefined;
        const lines = await scanImages(all, policy, {
          json: options.json === true,
          ...(write && { write }),
          progress: (line) => io.stderr.write(`${line}\n`),
        });
        io.stdout.write(
          options.json ? lines.map((l) => JSON.stringify(l)).join('\n') + '\n' : scanText(lines),
        );
        if (lines.some((l) => l.outcome === 'failed')) exitCode = 1;
      },
    );

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
      new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default(io.env.logLevel ?? 'info'),
    )
    .option(
      '--kubeconfig <file>',
      'cluster access for the RuntimeClass self-check (default: in-cluster, when running in a pod)',
    )
    .option(
      '--register [name]',
      'patch the caBundle of this MutatingWebhookConfiguration at startup (default name: kata-admission)',
    )
    .option(
      '--tls-ca <file>',
      'the CA of the serving certificate, for --register (default: ca.crt next to --tls-cert)',
    )
    .action(
      async (options: {
        config?: string;
        port: number;
        host?: string;
        tlsCert?: string;
        tlsKey?: string;
        devCerts: string;
        logLevel: LogLevel;
        kubeconfig?: string;
        register?: string | true;
        tlsCa?: string;
      }) => {
        if (Boolean(options.tlsCert) !== Boolean(options.tlsKey))
          throw new UsageError('give both --tls-cert and --tls-key, or neither');
        const logger = createLogger(options.logLevel);
        const kubeConfig = clusterAccess(options.kubeconfig, io.env.inCluster === true);
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
          ...(io.env.hostname && { scannerName: io.env.hostname }),
          ...(kubeConfig && { kubeConfig }),
          ...(options.register && {
            register: { name: options.register === true ? 'kata-admission' : options.register, caFile },
          }),
        });
        if (webhook.devCaFile) {
          logger.info(
            `try: curl --cacert ${webhook.devCaFile} -H 'Content-Type: application/json' --data @test/fixtures/build-plain.json https://localhost:${webhook.port}/mutate`,
          );
        }
        await new Promise<void>((resolve) =>
          io.onShutdownSignal(() => void webhook.shutdown().then(resolve)),
        );
        logger.flush();
      },
    );

  program
    .command('certs')
    .description('make a CA and a serving certificate for the webhook Service; prints the caBundle')
    .requiredOption('--service <name>', 'the webhook Service name')
    .requiredOption('--namespace <ns>', 'the Service namespace')
    .option('--out <dir>', 'output folder (an existing valid CA there is kept)', 'certs')
    .action(async (options: { service: string; namespace: string; out: string }) => {
      for (const [flag, value] of [
        ['--service', options.service],
        ['--namespace', options.namespace],
      ] as const) {
        if (!isDnsLabel(value))
          throw new UsageError(
            `${flag} "${value}" is not a valid DNS label (lower case letters, digits and "-", at most 63)`,
          );
      }
      const bundle = await ensureCerts(
        options.out,
        [...serviceDnsNames(options.service, options.namespace), 'localhost'],
        ['127.0.0.1'],
      );
      io.stdout.write(bundle.caBundle + '\n');
    });

  program
    .command('manifests')
    .description(
      'write the ConfigMap, webhook configuration, guard and RuntimeClasses that the config implies',
    )
    .option('--config <file>', 'config file (default: the embedded default config)')
    .option(
      '--out <dir>',
      'write one file per part and a kustomization.yaml into this folder (as in deploy/rendered/)',
    )
    .option('--helm-values', "print them as the Helm chart's `rendered` value (helm -f)")
    .action(async (options: { config?: string; out?: string; helmValues?: boolean }) => {
      const { text, policy } = await loadConfig(options.config);
      const rendered = renderManifests(policy, text);
      if (options.helmValues) {
        io.stdout.write(helmValuesText(rendered, options.config));
        return;
      }
      if (!options.out) {
        io.stdout.write(Object.values(rendered).map(manifestText).join('---\n'));
        return;
      }
      await mkdir(options.out, { recursive: true });
      for (const [file, content] of Object.entries(rendered))
        await writeFile(join(options.out, file), manifestText(content));
      await writeFile(join(options.out, 'kustomization.yaml'), kustomizationText(rendered));
      io.stderr.write(`wrote ${Object.keys(rendered).join(', ')} and kustomization.yaml to ${options.out}\n`);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
        ? 0
        : 2;
    }
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.stderr.write(`kata-admission: ${error.message}\n`);
      return 2;
    }
    io.stderr.write(`kata-admission: ${(error as Error).message}\n`);
    return 1;
  }
}
