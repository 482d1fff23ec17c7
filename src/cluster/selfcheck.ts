// What `serve` checks and registers through the Kubernetes API, when it has cluster access.
import { AdmissionregistrationV1Api, NodeV1Api, type KubeConfig } from '@kubernetes/client-node';
import { apiStatus } from '../kube/api.js';
import type { Logger } from '../observability/logger.js';
import type { Policy } from '../policy/policy.js';
import type { RuntimeClassOverheads } from '../policy/mutate/step.js';

/**
 * Problems that would make routed pods fail: a RuntimeClass the config names that does not exist,
 * or whose scheduling.nodeSelector contradicts the route's (the RuntimeClass admission plugin
 * rejects such pods). Throws when the API cannot be asked.
 */
async function readRuntimeClasses(
  kubeConfig: KubeConfig,
  policy: Policy,
): Promise<{ problems: string[]; overheads: RuntimeClassOverheads }> {
  const api = kubeConfig.makeApiClient(NodeV1Api);
  const problems: string[] = [];
  const overheads = new Map<string, Record<string, string> | null>();
  for (const route of policy.routes) {
    if (route.runtimeClassName === null) continue;
    let scheduling: Record<string, string>;
    try {
      const runtimeClass = await api.readRuntimeClass({ name: route.runtimeClassName });
      scheduling = runtimeClass.scheduling?.nodeSelector ?? {};
      overheads.set(route.runtimeClassName, runtimeClass.overhead?.podFixed ?? null);
    } catch (error) {
      if (apiStatus(error) !== 404) throw error;
      problems.push(`RuntimeClass "${route.runtimeClassName}" of route ${route.name} does not exist`);
      continue;
    }
    for (const [key, value] of Object.entries(route.nodeSelector)) {
      if (key in scheduling && scheduling[key] !== value) {
        problems.push(
          `RuntimeClass "${route.runtimeClassName}" schedules onto ${key}=${scheduling[key]} but route ${route.name} selects ${key}=${value}`,
        );
      }
    }
  }
  return { problems, overheads };
}

/** Sets caBundle on every webhook of the named MutatingWebhookConfiguration (no cert-manager needed). */
export async function registerCaBundle(kubeConfig: KubeConfig, name: string, caPem: string): Promise<number> {
  try {
    return await patchCaBundle(kubeConfig, name, caPem);
  } catch (error) {
    if ((error as { code?: number }).code !== 403) throw error;
    throw new Error(
      `--register: this identity is forbidden to read or patch MutatingWebhookConfiguration ${name}; ` +
        'add the component deploy/components/register to your overlay, which grants exactly that',
      { cause: error },
    );
  }
}

async function patchCaBundle(kubeConfig: KubeConfig, name: string, caPem: string): Promise<number> {
  const api = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  const configuration = await api.readMutatingWebhookConfiguration({ name });
  const caBundle = Buffer.from(caPem).toString('base64');
  const webhooks = configuration.webhooks ?? [];
  const body = [
    // Guard against a concurrent edit reordering the list under us.
    { op: 'test', path: '/metadata/resourceVersion', value: configuration.metadata?.resourceVersion },
    ...webhooks.map((_, i) => ({ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle })),
  ];
  await api.patchMutatingWebhookConfiguration({ name, body });
  return webhooks.length;
}

/**
 * The RuntimeClass check, run at start, on every config change and every `intervalMs`: its problems
 * make the webhook unready. An API it cannot reach says nothing about routing: logged, still ready.
 */
export class ClusterSelfCheck {
  private found: string[] = [];
  private overheadsRead: RuntimeClassOverheads = new Map();
  private running: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly policy: () => Policy,
    private readonly logger: Logger,
  ) {
    // Containerd's node config is out of reach from here; say so once, since it decides device exposure.
    logger.info(
      'self-check: cannot verify node config; set privileged_without_host_devices = true for the Kata runtime handler (docs/install.md)',
    );
  }

  problems(): string[] {
    return this.found;
  }

  /** The overhead each route's RuntimeClass defines, as last read. */
  overheads(): RuntimeClassOverheads {
    return this.overheadsRead;
  }

  start(intervalMs: number): void {
    void this.run();
    this.timer = setInterval(() => void this.run(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  run(): Promise<void> {
    this.running = readRuntimeClasses(this.kubeConfig, this.policy()).then(
      ({ problems, overheads }) => {
        this.overheadsRead = overheads;
        if (problems.length > 0)
          this.logger.error({ problems }, 'self-check: routed pods would fail; not ready');
        else if (this.found.length > 0) this.logger.info('self-check: RuntimeClasses agree with the config');
        this.found = problems;
      },
      (error: Error) => {
        this.logger.warn({ err: error.message }, 'self-check: cannot read RuntimeClasses');
      },
    );
    return this.running;
  }
}
