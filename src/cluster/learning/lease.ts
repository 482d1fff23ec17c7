// One active learning controller among the replicas: a coordination.k8s.io Lease, taken when free
// or expired and renewed while held (client-go's leader election, reduced to what one loop needs).
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { apiStatus } from '../../kube/api.js';

export interface LeaseOptions {
  namespace: string;
  name: string;
  identity: string;
  durationSeconds: number;
  onLead(): void;
  onLose(): void;
  onError(error: unknown): void;
}

/**
 * A Lease's times are MicroTime: RFC 3339 with exactly six fraction digits, which the API server
 * requires and client-node does not write for a Date (it passes this string through as given).
 */
const microTime = (date: Date) => date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;

export class LeaseElector {
  private readonly api: CoordinationV1Api;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: LeaseOptions,
  ) {
    this.api = kubeConfig.makeApiClient(CoordinationV1Api);
  }

  start(): void {
    const tick = () => void this.tryLead().catch((error: unknown) => this.options.onError(error));
    tick();
    this.timer = setInterval(tick, (this.options.durationSeconds * 1000) / 3);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.setLeading(false);
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    if (leading) this.options.onLead();
    else this.options.onLose();
  }

  /** Takes or renews the lease; a conflict (someone else wrote first) means not leading. */
  private async tryLead(): Promise<void> {
    const { namespace, name, identity, durationSeconds } = this.options;
    const now = new Date();
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: microTime(now),
    };
    let current: V1Lease;
    try {
      current = await this.api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (apiStatus(error) !== 404) throw error;
      await this.api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: microTime(now) } },
      });
      return this.setLeading(true);
    }
    const held = current.spec?.holderIdentity;
    const renewed = current.spec?.renewTime ? new Date(current.spec.renewTime).getTime() : 0;
    const expired = renewed + (current.spec?.leaseDurationSeconds ?? durationSeconds) * 1000 < now.getTime();
    if (held && held !== identity && !expired) return this.setLeading(false);
    try {
      await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...current,
          spec: { ...current.spec, ...spec, ...(held !== identity && { acquireTime: microTime(now) }) },
        },
      });
      this.setLeading(true);
    } catch (error) {
      if (apiStatus(error) !== 409) throw error;
      this.setLeading(false);
    }
  }
}
