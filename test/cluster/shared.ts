// One control plane per Kubernetes minor per test process (and, once a suite asks for it, one node
// and its registry), shared by the end-to-end suites one at a time. Each suite gets the cluster
// back as the first one found it: everything created since is deleted and waited for, the way the
// namespace controller empties a namespace, and the build namespaces' own objects are applied again.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane, type ControlPlane } from './controlplane.js';
import { run } from './deploy.js';
import { startNode, type Node } from './node.js';
import { pushNodeImages, type NodeImages } from './node-images.js';
import { startRegistry, type Registry } from '../registry/registry.js';

interface Item {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

export interface SharedNode {
  node: Node;
  registry: Registry;
  images: NodeImages;
}

export interface Shared {
  cp: ControlPlane;
  kubectl(args: string[]): string;
  /** The node, started by the first suite that needs one. */
  node(): Promise<SharedNode>;
}

interface Entry extends Shared {
  dir: string;
  baseline: Set<string>;
  inUse: boolean;
  started?: Promise<SharedNode>;
}

const shared = new Map<string, Promise<Entry>>();

// What the control plane and the node's controllers keep for themselves (the system namespaces,
// the Node, the API server's trust bundle) stays; events.k8s.io is a second view of core Events;
// the controllers publish the two PUBLISHED objects into every namespace.
const SYSTEM_NAMESPACES = new Set(['kube-system', 'kube-public', 'kube-node-lease']);
const SKIPPED_RESOURCES = new Set([
  'nodes',
  'events.events.k8s.io',
  'clustertrustbundles.certificates.k8s.io',
]);
const PUBLISHED = new Set(['ConfigMap/kube-root-ca.crt', 'ServiceAccount/default']);

const keyOf = (o: Item) => `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

function everything(kubectl: Shared['kubectl']): Item[] {
  const resources = kubectl(['api-resources', '--verbs=list,delete', '-o', 'name'])
    .split('\n')
    .filter((r) => r && !SKIPPED_RESOURCES.has(r));
  const { items } = JSON.parse(kubectl(['get', resources.join(','), '-A', '-o', 'json'])) as {
    items: Item[];
  };
  return items.filter(
    (o) =>
      !SYSTEM_NAMESPACES.has(o.metadata.namespace ?? '') && !PUBLISHED.has(`${o.kind}/${o.metadata.name}`),
  );
}

/**
 * Deletes what is not in the baseline until nothing is left: objects first (a controller may make
 * new ones meanwhile: the next pass finds them), then the namespaces, once empty. No namespace
 * controller runs without the node, so each is finalized as that controller would.
 */
function reset(entry: Entry): void {
  for (let pass = 1; ; pass++) {
    const extra = everything(entry.kubectl).filter((o) => !entry.baseline.has(keyOf(o)));
    if (extra.length === 0) return;
    if (pass > 10) throw new Error(`the cluster did not reset: ${extra.map(keyOf).join(', ')}`);
    const objects = extra.filter((o) => o.kind !== 'Namespace');
    if (objects.length > 0) {
      const file = join(entry.dir, 'reset.json');
      writeFileSync(file, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
      entry.kubectl(['delete', '-f', file, '--ignore-not-found', '--grace-period=1', '--timeout=120s']);
      continue;
    }
    for (const { metadata } of extra) {
      entry.kubectl(['delete', 'namespace', metadata.name, '--wait=false', '--ignore-not-found']);
      const finalized = join(entry.dir, 'finalize.json');
      writeFileSync(
        finalized,
        JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: metadata.name }, spec: {} }),
      );
      try {
        entry.kubectl(['replace', '--raw', `/api/v1/namespaces/${metadata.name}/finalize`, '-f', finalized]);
      } catch (error) {
        // With the node, the namespace controller may have finished first.
        if (!/not ?found/i.test(String((error as { stderr?: string }).stderr))) throw error;
      }
      entry.kubectl(['wait', '--for=delete', `namespace/${metadata.name}`, '--timeout=60s']);
    }
  }
}

async function start(minor: string | undefined, prepare: (s: Shared) => Promise<void>): Promise<Entry> {
  const cp = await startControlPlane(minor);
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-shared-'));
  const kubeconfig = join(dir, 'admin.kubeconfig');
  writeFileSync(kubeconfig, cp.admin.exportConfig());
  const entry: Entry = {
    cp,
    dir,
    baseline: new Set(),
    inUse: false,
    kubectl: (args) => run(join(cp.bin, 'kubectl'), [...args, `--kubeconfig=${kubeconfig}`]),
    node() {
      entry.started ??= (async () => {
        const registry = await startRegistry(join(dir, 'registry'));
        const images = await pushNodeImages(registry.host);
        return { registry, images, node: await startNode(cp, registry.host, images.pause) };
      })();
      return entry.started;
    },
  };
  await prepare(entry);
  entry.baseline = new Set(everything(entry.kubectl).map(keyOf));
  return entry;
}

/**
 * The shared cluster of `minor`, reset and `prepare`d (the build namespaces, the executor), for
 * one suite until `release`.
 */
export async function acquire(
  minor: string | undefined,
  prepare: (s: Shared) => Promise<void>,
): Promise<Shared & { release(): void }> {
  const key = minor ?? 'newest';
  let pending = shared.get(key);
  const fresh = !pending;
  if (!pending) shared.set(key, (pending = start(minor, prepare)));
  const entry = await pending;
  if (entry.inUse) throw new Error('the shared cluster is in use: end-to-end suites run one at a time');
  if (!fresh) {
    reset(entry);
    await prepare(entry);
  }
  entry.inUse = true;
  return { ...entry, node: entry.node, release: () => (entry.inUse = false) };
}

/** Stops every shared control plane, node and registry (the end-to-end runner's last step). */
export async function stopShared(): Promise<void> {
  for (const pending of shared.values()) {
    const entry = await pending.catch(() => undefined);
    if (!entry) continue;
    const started = await entry.started?.catch(() => undefined);
    await started?.node.stop();
    await started?.registry.stop();
    await entry.cp.stop();
    rmSync(entry.dir, { recursive: true, force: true });
  }
  shared.clear();
}
