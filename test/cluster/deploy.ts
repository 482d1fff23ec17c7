// The manifests of deploy/ as the e2e tests apply them: rendered by the real kustomize and applied
// by the real kubectl (`kubectl apply -k`), both built from the Go module proxy (test/controlplane).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { builtBinaries } from './controlplane.js';

export const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: any;
}

const rendered = new Map<string, Manifest[]>();

/** Runs a real binary; its stdout. Throws with its stderr. */
export function run(binary: string, args: string[], env?: NodeJS.ProcessEnv): string {
  return execFileSync(binary, args, {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
}

/** The real helm and kustomize (test/controlplane/build.sh tools). */
export function tool(name: 'helm' | 'kustomize'): string {
  return join(builtBinaries('tools'), name);
}

export function parseManifests(text: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as Manifest)
    .filter(Boolean);
}

/** `kustomize build DIR`, parsed (once per folder and process). */
export function kustomize(dir: string): Manifest[] {
  let manifests = rendered.get(dir);
  if (!manifests) {
    manifests = parseManifests(run(tool('kustomize'), ['build', dir]));
    rendered.set(dir, manifests);
  }
  return structuredClone(manifests);
}

/** A kustomization made on the fly, as a user's overlay: `resources` and `components` under deploy/ (or absolute). */
export function composedManifests(resources: string[], components: string[]): Manifest[] {
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-overlay-'));
  writeKustomization(dir, { resources, components });
  try {
    return kustomize(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A kustomization.yaml in `dir` whose resources and components are under deploy/ (or absolute):
 * kustomize takes other roots by relative path only.
 */
export function writeKustomization(
  dir: string,
  {
    resources,
    components = [],
    ...rest
  }: { resources: string[]; components?: string[]; [key: string]: unknown },
): void {
  const from = (p: string) => relative(dir, isAbsolute(p) ? p : join(DEPLOY, p));
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    stringify({ ...rest, resources: resources.map(from), components: components.map(from) }),
  );
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

/** The Node flags the Deployment runs the webhook with (its NODE_OPTIONS). */
export function deploymentNodeArgs(): string[] {
  const env = manifest('Deployment').spec.template.spec.containers[0].env as {
    name: string;
    value: string;
  }[];
  return env.find((e) => e.name === 'NODE_OPTIONS')!.value.split(' ');
}

/** The config the ConfigMap ships. */
export function deployConfigYaml(): string {
  return manifest('ConfigMap', 'kata-admission-config').data['config.yaml'];
}
