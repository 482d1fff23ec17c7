// The manifests of deploy/ as the e2e tests apply them: rendered by the real kubectl's kustomize
// (`kubectl kustomize`, what `kubectl apply -k` runs), built with the control plane.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { controlPlaneBinaries } from './controlplane.js';

export const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: any;
}

let kubectlPath: string | undefined;
const rendered = new Map<string, Manifest[]>();

/** Runs the real kubectl (built with the control plane); its stdout. Throws with its stderr. */
export function kubectl(args: string[], kubeconfig?: string): string {
  kubectlPath ??= join(controlPlaneBinaries(), 'kubectl');
  return execFileSync(kubectlPath, [...args, ...(kubeconfig ? [`--kubeconfig=${kubeconfig}`] : [])], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** `kubectl kustomize DIR`, parsed (once per folder and process). */
export function kustomize(dir: string): Manifest[] {
  let manifests = rendered.get(dir);
  if (!manifests) {
    const text = kubectl(['kustomize', dir]);
    manifests = parseAllDocuments(text)
      .map((d) => d.toJS() as Manifest)
      .filter(Boolean);
    rendered.set(dir, manifests);
  }
  return structuredClone(manifests);
}

/** A kustomization made on the fly, as a user's overlay: `resources` and `components` under deploy/. */
export function composedManifests(resources: string[], components: string[]): Manifest[] {
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-overlay-'));
  // kustomize takes other roots by relative path only.
  const abs = (p: string) => relative(dir, join(DEPLOY, p));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    stringify({ resources: resources.map(abs), components: components.map(abs) }),
  );
  try {
    return kustomize(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type Overlay = 'install' | 'enforce';

/** One of deploy/overlays/: install (step 1) or enforce (step 2). */
export function deployManifests(overlay: Overlay = 'install'): Manifest[] {
  return kustomize(join(DEPLOY, 'overlays', overlay));
}

export function manifest(kind: string, name?: string, overlay: Overlay = 'install'): Manifest {
  const found = deployManifests(overlay).find((m) => m.kind === kind && (!name || m.metadata.name === name));
  if (!found) throw new Error(`deploy/overlays/${overlay} has no ${kind} ${name ?? ''}`);
  return found;
}

/** The config the ConfigMap ships. */
export function deployConfigYaml(): string {
  return manifest('ConfigMap', 'kata-admission-config').data['config.yaml'];
}
