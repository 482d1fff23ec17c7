// A real kube-apiserver (the run's, shared: ./shared.ts) with deploy/ applied with the real
// `kubectl apply -k`, as docs/install.md's steps say, the webhook served from this process (only
// its clientConfig points here, as envtest does), and the build executor's identity: the setup
// every end-to-end suite starts from.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubernetesObjectApi, PatchStrategy, type V1Pod } from '@kubernetes/client-node';
import { createLogger } from '../../src/observability/logger.js';
import { ensureCerts } from '../../src/tls/certs.js';
import { startWebhook, type Webhook, type WebhookOptions } from '../../src/server/webhook.js';
import { fixture, withPod } from '../helpers.js';
import { eventually } from '../https.js';
import { freePort, type ControlPlane } from './controlplane.js';
import type { Node } from './node.js';
import type { NodeImages } from './node-images.js';
import type { Registry } from '../registry/registry.js';
import { acquire, type Shared } from './shared.js';
import {
  DEPLOY,
  deployConfigYaml,
  deployManifests,
  writeKustomization,
  type Manifest,
  type Overlay,
} from './deploy.js';

export const BUILD_NS = 'sd-build-namespace';
const FIELD_MANAGER = 'kata-admission-e2e';

export function errorText(error: unknown): string {
  const e = error as { body?: unknown; message?: string };
  return `${typeof e.body === 'string' ? e.body : JSON.stringify(e.body ?? '')} ${e.message ?? ''}`;
}

/** client-node returns class instances; compare their JSON. */
export const plain = (value: unknown) => JSON.parse(JSON.stringify(value));

let seq = 0;
/** A fixture's pod with a fresh name, ready to create. */
export function podFrom(name: string, change: (pod: V1Pod) => void = () => {}): V1Pod {
  const pod = withPod(fixture(name), change).request.object;
  pod.metadata!.name = `${pod.metadata!.name}-${++seq}`;
  return pod;
}

/** Server-side apply, as the test's own field manager. */
async function applyTo(
  objects: KubernetesObjectApi,
  object: Manifest | Record<string, unknown>,
): Promise<void> {
  await objects.patch(
    object as never,
    undefined,
    undefined,
    FIELD_MANAGER,
    true,
    PatchStrategy.ServerSideApply,
  );
}

/**
 * What Screwdriver's cluster already has: the build namespaces and an executor that may create
 * pods there and add ephemeral containers to them.
 */
async function prepareBuildNamespaces({ cp }: Shared): Promise<void> {
  const objects = KubernetesObjectApi.makeApiClient(cp.admin);
  const apply = (object: Record<string, unknown>) => applyTo(objects, object);
  // kube-controller-manager does not run without the node, so the default ServiceAccounts are made by hand.
  for (const ns of [BUILD_NS, 'team-web']) {
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    await apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: ns } });
  }
  await apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'sd-executor', namespace: BUILD_NS },
    rules: [
      { apiGroups: [''], resources: ['pods'], verbs: ['create', 'get', 'list', 'delete'] },
      { apiGroups: [''], resources: ['pods/status'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods/ephemeralcontainers'], verbs: ['update', 'patch'] },
    ],
  });
  // Screwdriver's executor authenticates with a ServiceAccount token, bound to the same Role.
  await apply({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: 'sd-executor', namespace: BUILD_NS },
  });
  await apply({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'sd-executor', namespace: BUILD_NS },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'sd-executor' },
    subjects: [
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: cp.executorUser },
      { kind: 'ServiceAccount', name: 'sd-executor', namespace: BUILD_NS },
    ],
  });
}

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'kata-admission-e2e-'));
  readonly objects: KubernetesObjectApi;
  readonly asAdmin: CoreV1Api;
  readonly asExecutor: CoreV1Api;
  webhook?: Webhook;
  node?: Node;
  registry?: Registry;
  private replicas: Webhook[] = [];
  caPem = '';
  private mountDir = join(this.dir, 'config');
  private configVersion = 0;
  private overlay: Overlay = 'install';

  readonly cp: ControlPlane;

  private constructor(private readonly shared: Shared & { release(): void }) {
    this.cp = shared.cp;
    this.objects = KubernetesObjectApi.makeApiClient(this.cp.admin);
    this.asAdmin = this.cp.admin.makeApiClient(CoreV1Api);
    this.asExecutor = this.cp.executor.makeApiClient(CoreV1Api);
  }

  /**
   * Install step 1 on the run's API server (as `start` gives it): the base of deploy/, before any
   * webhook serves (its address answers nothing).
   */
  static async install(minor?: string): Promise<Cluster> {
    const cluster = await Cluster.start(minor);
    try {
      await cluster.applyDeploy('install', `https://127.0.0.1:${await freePort()}/mutate`);
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /**
   * The run's API server (shared by the suites one at a time, reset to how the first suite found
   * it) with the build namespaces and the executor, nothing of kata-admission's yet.
   */
  static async start(minor?: string): Promise<Cluster> {
    const shared = await acquire(minor, prepareBuildNamespaces);
    const cluster = new Cluster(shared);
    try {
      const certs = await ensureCerts(join(cluster.dir, 'tls'), ['localhost'], ['127.0.0.1']);
      cluster.caPem = certs.ca.certPem;
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  /**
   * Install step 2: the webhook serves (on the config deploy/ ships, or `configText`, from a
   * ConfigMap-style mount), then the enforce overlay.
   */
  async serveAndEnforce(configText = deployConfigYaml(), extra: Partial<WebhookOptions> = {}): Promise<void> {
    mkdirSync(this.mountDir);
    this.projectConfig(configText);
    symlinkSync('..data/config.yaml', join(this.mountDir, 'config.yaml'));
    this.webhook = await this.startReplica(extra);
    await this.applyDeploy('enforce', this.webhookUrl());
    // Policies and webhook configurations reach the API server's admission chain asynchronously.
    await eventually(
      async () => {
        try {
          await this.asExecutor.createNamespacedPod({
            namespace: BUILD_NS,
            body: podFrom('build-plain'),
            dryRun: 'All',
          });
          return true;
        } catch {
          return false;
        }
      },
      30_000,
      'the API server to call the webhook',
    );
  }

  /** The node that runs this cluster's pods (the run's), pulling from its registry, which holds the images it runs. */
  async startNode(): Promise<NodeImages> {
    const { node, registry, images } = await this.shared.node();
    [this.node, this.registry] = [node, registry];
    return images;
  }

  /** A webhook process on the mounted config; the first one serves the API server, others stand by. */
  async startReplica(extra: Partial<WebhookOptions> = {}): Promise<Webhook> {
    const tls = join(this.dir, 'tls');
    const replica = await startWebhook({
      port: 0,
      host: '127.0.0.1',
      configPath: join(this.mountDir, 'config.yaml'),
      tlsCert: join(tls, 'tls.crt'),
      tlsKey: join(tls, 'tls.key'),
      devCertsDir: tls,
      logger: createLogger('silent'),
      configPollMs: 100,
      ...extra,
    });
    this.replicas.push(replica);
    return replica;
  }

  webhookUrl(): string {
    return `https://127.0.0.1:${this.webhook!.port}/mutate`;
  }

  apply(object: Manifest | Record<string, unknown>): Promise<void> {
    return applyTo(this.objects, object);
  }

  /**
   * `kubectl apply -k` (the real kubectl) of an overlay of deploy/overlays/<overlay>, as an
   * operator's own overlay would be: it only points the webhook's clientConfig at `url`.
   */
  async applyDeploy(overlay: Overlay, url: string): Promise<void> {
    this.overlay = overlay;
    this.applyOverlay(`overlay-${overlay}`, { resources: [join(DEPLOY, 'overlays', overlay)] }, url);
  }

  /**
   * `kubectl apply -k` of a user's overlay (absolute paths), plus the one test-only patch: the
   * webhook's clientConfig points at `url`.
   */
  applyOverlay(
    name: string,
    kustomization: { resources: string[]; components?: string[]; [key: string]: unknown },
    url: string,
  ): void {
    const dir = join(this.dir, name);
    mkdirSync(dir, { recursive: true });
    const clientConfig = { url, caBundle: Buffer.from(this.caPem).toString('base64') };
    writeKustomization(dir, {
      ...kustomization,
      patches: [
        ...((kustomization.patches as object[] | undefined) ?? []),
        {
          target: {
            group: 'admissionregistration.k8s.io',
            kind: 'MutatingWebhookConfiguration',
            name: 'kata-admission',
          },
          patch: JSON.stringify([{ op: 'replace', path: '/webhooks/0/clientConfig', value: clientConfig }]),
        },
      ],
    });
    // Plain `kubectl apply -k`, as the docs say: its three-way merge also undoes `kubectl patch`.
    this.kubectl(['apply', '-k', dir]);
  }

  /** The real kubectl of this control plane's release, as the admin. */
  kubectl(args: string[]): string {
    return this.shared.kubectl(args);
  }

  /** The admin's kubeconfig as a file, for the real kubectl. */
  kubeconfig(): string {
    const file = join(this.dir, 'admin.kubeconfig');
    writeFileSync(file, this.cp.admin.exportConfig());
    return file;
  }

  /** Points the registered webhook somewhere else (a closed port: the webhook is down). */
  async pointWebhookAt(url: string): Promise<void> {
    await this.apply(
      this.localWebhook(
        deployManifests(this.overlay).find((m) => m.kind === 'MutatingWebhookConfiguration')!,
        url,
      ),
    );
  }

  /** What an operator's emergency bypass does: the webhook configuration is gone, the guard stays. */
  async removeWebhook(): Promise<void> {
    await this.objects.delete({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'kata-admission' },
    } as never);
  }

  private localWebhook(mwc: Manifest, url: string): Manifest {
    const copy = structuredClone(mwc);
    for (const hook of copy.webhooks)
      hook.clientConfig = { url, caBundle: Buffer.from(this.caPem).toString('base64') };
    return copy;
  }

  /** What the kubelet does for a ConfigMap volume: a new timestamped folder, then swap ..data. */
  projectConfig(text: string): void {
    const version = `..v${++this.configVersion}`;
    mkdirSync(join(this.mountDir, version));
    writeFileSync(join(this.mountDir, version, 'config.yaml'), text);
    symlinkSync(version, join(this.mountDir, '..data_tmp'));
    renameSync(join(this.mountDir, '..data_tmp'), join(this.mountDir, '..data'));
  }

  createAsExecutor(pod: V1Pod, dryRun?: 'All', namespace = BUILD_NS): Promise<V1Pod> {
    return this.asExecutor.createNamespacedPod({ namespace, body: pod, ...(dryRun && { dryRun }) });
  }

  /** Stops this suite's webhooks and gives the cluster back for the next suite. */
  async stop(): Promise<void> {
    for (const replica of this.replicas) await replica.shutdown();
    if (this.webhook && !this.replicas.includes(this.webhook)) await this.webhook.shutdown();
    this.shared.release();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
