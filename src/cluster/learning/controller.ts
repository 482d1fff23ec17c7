// Learning from builds that fail in the sandbox: the elected replica watches routed build pods; a
// container on a sandboxed route that terminated the way an image Kata cannot run does gives a
// finding on the ImageVerdict of the digest that ran (containerStatuses[].imageID), a Warning Event
// on the pod and a metric. The image's next build goes where the finding's class leads (only
// towards isolation), exactly as if a content scan had found it.
import {
  CoreV1Api,
  makeInformer,
  type Informer,
  type KubeConfig,
  type V1ContainerStatus,
  type V1Pod,
} from '@kubernetes/client-node';
import { LRUCache } from 'lru-cache';
import type { VerdictStore } from '../../images/content/store.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Policy } from '../../policy/policy.js';
import { learnedRoute } from '../../policy/rules/image-class.js';
import { LeaseElector } from './lease.js';
import { sandboxFailure, type SandboxFailure } from './signatures.js';

const DIGEST_OF_IMAGE_ID = /@(sha256:[0-9a-f]{64})$/;

const containerImage = (pod: V1Pod, container: string) =>
  [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((c) => c.name === container)
    ?.image;

/** The image a container of the pod names, without the digest the webhook may have pinned. */
const specImage = (pod: V1Pod, container: string) =>
  containerImage(pod, container)?.replace(/@sha256:[0-9a-f]{64}$/, '');

/** The digest the container's image is pinned to (what was judged), if it is. */
export const pinnedDigest = (pod: V1Pod, container: string) =>
  DIGEST_OF_IMAGE_ID.exec(containerImage(pod, container) ?? '')?.[1];

export interface LearningOptions {
  policy(): Policy;
  /** The ImageVerdict store, while content scanning is on. */
  store(): VerdictStore | undefined;
  logger: Logger;
  metrics: Metrics;
  identity: string;
  leaseNamespace: string;
}

export class LearningController {
  private readonly core: CoreV1Api;
  private readonly elector: LeaseElector;
  private informer: Informer<V1Pod> | undefined;
  /** Containers already recorded, so that every status update of a failed pod is not a write. */
  private readonly seen = new LRUCache<string, true>({ max: 10_000 });

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly options: LearningOptions,
  ) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.elector = new LeaseElector(kubeConfig, {
      namespace: options.leaseNamespace,
      name: 'kata-admission-learning',
      identity: options.identity,
      durationSeconds: 15,
      onLead: () => this.watch(),
      onLose: () => {
        void this.informer?.stop();
        this.informer = undefined;
      },
      onError: (error) => options.logger.warn({ error: String(error) }, 'learning: lease failed'),
    });
  }

  start(): void {
    this.elector.start();
  }

  stop(): void {
    this.elector.stop();
  }

  private watch(): void {
    const label = this.options.policy().annotations.route;
    this.options.logger.info(
      { identity: this.options.identity },
      'learning: leading; watching routed builds',
    );
    this.informer = makeInformer<V1Pod>(
      this.kubeConfig,
      '/api/v1/pods',
      () => this.core.listPodForAllNamespaces({ labelSelector: label }),
      label,
    );
    const seen = (pod: V1Pod) =>
      void this.onPod(pod).catch((error: unknown) =>
        this.options.logger.warn({ error: String(error) }, 'learning: recording a finding failed'),
      );
    this.informer.on('add', seen);
    this.informer.on('update', seen);
    const informer = this.informer;
    informer.on('error', (error) => {
      this.options.logger.warn({ error: String(error) }, 'learning: pod watch failed; restarting');
      // Only while still leading with this informer: a lost lease stopped it for good.
      setTimeout(() => this.informer === informer && void informer.start().catch(() => {}), 5000).unref();
    });
    void informer.start().catch(() => {});
  }

  /** Every failed container of a build on a sandboxed route, once. */
  async onPod(pod: V1Pod): Promise<void> {
    const policy = this.options.policy();
    const { learning } = policy.config.imageInspection.content;
    const store = this.options.store();
    if (!learning.enabled || !store) return;
    const route = policy.routes.find((r) => r.name === pod.metadata?.labels?.[policy.annotations.route]);
    if (!route?.isSandboxed || !policy.namespaces.has(pod.metadata?.namespace ?? '')) return;
    const statuses = [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
    for (const status of statuses) {
      const failure = sandboxFailure(status, learning.signatures);
      const digest = DIGEST_OF_IMAGE_ID.exec(status.imageID ?? '')?.[1];
      const key = `${pod.metadata?.uid}/${status.name}`;
      if (!failure || !digest || this.seen.has(key)) continue;
      this.seen.set(key, true);
      const judged = pinnedDigest(pod, status.name);
      if (judged && judged !== digest)
        this.options.logger.warn(
          { pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, judged, ran: digest },
          'learning: the digest that ran is not the one the pod was pinned to; the finding is on the one that ran',
        );
      await this.record(pod, status, digest, failure, { policy, store, route: route.name });
    }
  }

  private async record(
    pod: V1Pod,
    status: V1ContainerStatus,
    digest: string,
    failure: SandboxFailure,
    { policy, store, route }: { policy: Policy; store: VerdictStore; route: string },
  ): Promise<void> {
    const name = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
    // The reference the pod asked for (the status may name the image by its config digest).
    const image = specImage(pod, status.name) ?? status.image;
    const repository = image.replace(/@.*$/, '').replace(/:[^/:]+$/, '');
    const finding = { ...failure, pod: name, container: status.name, route, at: Date.now() };
    if (!(await store.learn(digest, `${repository}@${digest}`, finding))) return;
    const next = learnedRoute(policy, failure.class, route);
    const message =
      `image ${image} (${digest}) failed on route ${route} as a ${failure.class} image does (${failure.evidence}); ` +
      (next
        ? `its next build goes to ${next}`
        : `no route more isolated takes ${failure.class} images: an operator decides (ImageVerdict spec.override)`);
    this.options.metrics.learnedFindings.inc({ class: failure.class, route });
    this.options.logger.warn({ pod: name, image, digest, class: failure.class, next }, message);
    await this.core.createNamespacedEvent({
      namespace: pod.metadata!.namespace!,
      body: {
        metadata: { generateName: `${pod.metadata!.name}.`, namespace: pod.metadata!.namespace! },
        involvedObject: {
          apiVersion: 'v1',
          kind: 'Pod',
          name: pod.metadata!.name!,
          namespace: pod.metadata!.namespace!,
          uid: pod.metadata!.uid!,
        },
        type: 'Warning',
        reason: 'SandboxIncompatible',
        message: message.slice(0, 1024),
        source: { component: 'kata-admission' },
        reportingComponent: 'kata-admission',
        reportingInstance: this.options.identity,
        firstTimestamp: new Date(),
        lastTimestamp: new Date(),
        count: 1,
      },
    });
  }
}
