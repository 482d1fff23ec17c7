// What survives config reloads: the image inspector (and its caches) while the inspection settings
// stay the same, and the verdict store while its times do. The inspector, the registry client, the
// scanner and the ImageVerdict store are loaded when a config first asks for them.
import type { KubeConfig } from '@kubernetes/client-node';
import { reviewDepsFor, type ReviewDeps } from '../admission/review.js';
import type { ContentScanningConfig } from '../config/schema.js';
import { MemoryVerdictStore, storeTimes, type VerdictStore } from '../images/content/store.js';
import type { ImageInspector } from '../images/inspector.js';
import { canonicalJson } from '../kube/json.js';
import type { Logger } from '../observability/logger.js';
import { contentMetrics, inspectionMetrics, type Metrics } from '../observability/metrics.js';
import type { Policy } from '../policy/policy.js';
import type { RotatingSeal } from '../policy/seal.js';
import type { RuntimeClassOverheads } from '../policy/mutate/step.js';

export type VerdictStores = ReturnType<typeof verdictStores>;

/**
 * The review's dependencies for the policy in force. One inspector per inspection config: its cache
 * survives config reloads that do not touch it.
 */
export function reviewDepsSource(
  metrics: Metrics,
  stores: VerdictStores,
  logger: Logger,
  seal: RotatingSeal,
  overheads: () => RuntimeClassOverheads,
) {
  let inspector: ImageInspector | undefined;
  let inspectorSettings = '';
  let deps: ReviewDeps | undefined;
  let applying = Promise.resolve();
  const inspectorOf = async (config: Policy['config']['imageInspection']) => {
    const { inspectorFor } = await import('../images/inspector.js');
    const events = contentMetrics(metrics);
    const content = config.content.enabled
      ? { store: await stores.of(config.content), events, logger }
      : undefined;
    return inspectorFor(config, inspectionMetrics(metrics), content);
  };
  const use = async (policy: Policy) => {
    const config = policy.config.imageInspection;
    const fingerprint = canonicalJson(config);
    if (fingerprint !== inspectorSettings) {
      inspector?.content?.stop();
      inspector = config.enabled ? await inspectorOf(config) : undefined;
      inspectorSettings = fingerprint;
    }
    deps = reviewDepsFor(policy, inspector, seal, overheads);
  };
  return {
    current: () => deps!,
    /** Puts the policy in force once what it needs is loaded; reloads apply in the order they came. */
    apply(policy: Policy): Promise<void> {
      const next = applying.then(() => use(policy));
      applying = next.catch(() => {}); // a failed one does not hold up the next
      return next;
    },
    inspector: () => inspector,
  };
}

/**
 * Where content verdicts live: ImageVerdict objects with cluster access, else memory. One store
 * while its times stay the same, so a config reload does not forget what was scanned.
 */
export function verdictStores(
  options: { kubeConfig?: KubeConfig; scannerName?: string; logger: Logger },
  metrics: Metrics,
) {
  let store: { times: string; store: VerdictStore } | undefined;
  const of = async (config: ContentScanningConfig): Promise<VerdictStore> => {
    const times = storeTimes(config);
    if (store?.times === canonicalJson(times)) return store.store;
    store?.store.stop();
    const onChange = (size: number) => metrics.contentVerdicts.set(size);
    const made = options.kubeConfig
      ? new (await import('../images/content/cluster-store.js')).ClusterVerdictStore(options.kubeConfig, {
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
