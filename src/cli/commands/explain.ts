// `kata-admission explain`: the route, the reason and the changes for one pod, from a file or a live pod.
import type { Command } from 'commander';
import { reviewAdmission, reviewDepsFor } from '../../admission/review.js';
import type { Pod } from '../../kube/pod.js';
import { loadPolicy } from '../../policy/load.js';
import type { Policy } from '../../policy/policy.js';
import { clusterAccess, offlineReviewDeps, type Context } from '../context.js';
import { explanation, reviewForPod, storedExplanation } from '../explanation.js';
import { livePodRef, readDocument, readLivePod, UsageError } from '../input.js';

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
  if (!config.enabled || !config.content.enabled)
    return { deps: await offlineReviewDeps(policy), stop: () => {} };
  const [
    { NO_CONTENT_EVENTS },
    { MemoryVerdictStore, storeTimes },
    { inspectorFor },
    { commandVerdictStore },
  ] = await Promise.all([
    import('../../images/content/checks.js'),
    import('../../images/content/store.js'),
    import('../../images/inspector.js'),
    import('../scan.js'),
  ]);
  const kubeConfig = await clusterAccess(options.kubeconfig, false);
  const cluster = kubeConfig && commandVerdictStore(kubeConfig, config.content, 'explain');
  await cluster?.synced;
  const store = cluster || new MemoryVerdictStore(storeTimes(config.content));
  const inspector = inspectorFor(config, undefined, { store, events: NO_CONTENT_EVENTS })!;
  const deps = reviewDepsFor(policy, inspector);
  if (options.scan) {
    await reviewAdmission(review, deps);
    await inspector.content!.idle();
  }
  return { deps, stop: () => store.stop() };
}

export function explainCommand(program: Command, ctx: Context): void {
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
    .action((file: string, options: ExplainOptions) => explain(file, options, ctx));
}

interface ExplainOptions {
  config?: string;
  kubeconfig?: string;
  namespace?: string;
  scan?: boolean;
  offline?: boolean;
}

async function explain(file: string, options: ExplainOptions, ctx: Context): Promise<void> {
  const policy = await loadPolicy(options.config);
  if (options.offline && (options.scan || options.kubeconfig))
    throw new UsageError('--offline contacts nothing: it does not go with --scan or --kubeconfig');
  const review = reviewForPod(await readPod(file, options, ctx), policy);
  if (!options.offline && policy.config.imageInspection.enabled)
    ctx.io.stderr.write(
      "note: image inspection is on, so the images' registries are asked (--offline: none)\n",
    );
  const { deps, stop } = options.offline
    ? { deps: reviewDepsFor(policy), stop: () => {} }
    : await explainDeps(policy, review, options);
  const outcome = await reviewAdmission(review, deps).finally(stop);
  if (!outcome.ok) throw new UsageError(outcome.error);
  const pod = (review as { request?: { object?: Pod } }).request?.object;
  ctx.io.stdout.write(
    pod && outcome.kind === 'patched' && policy.routeOf(pod)
      ? storedExplanation(outcome, pod, policy)
      : explanation(outcome, pod, policy),
  );
  if (outcome.kind === 'denied') ctx.exitCode = 2;
}

/** A file, standard input, or a live pod (NAMESPACE/NAME, pod/NAME) read with --kubeconfig. */
async function readPod(file: string, options: ExplainOptions, ctx: Context): Promise<unknown> {
  const live = livePodRef(file, options.namespace);
  if (!live) return readDocument(file, ctx.io.stdin);
  if (!options.kubeconfig)
    throw new UsageError(`${file} is not a file; reading it from a cluster needs --kubeconfig`);
  return readLivePod((await clusterAccess(options.kubeconfig, false))!, live);
}
