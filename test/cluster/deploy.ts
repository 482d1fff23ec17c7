// The manifests of deploy/ as the e2e tests apply them: a small kustomize for what deploy/ uses
// (resources, components, inline JSON 6902 patches by target kind and name), in order.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { parseAllDocuments, parse, stringify } from 'yaml';

export const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: any;
}

interface Kustomization {
  resources?: string[];
  components?: string[];
  patches?: { target: { kind: string; name: string }; patch: string }[];
}

function build(dir: string, into: Manifest[] = []): Manifest[] {
  const k = parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as Kustomization;
  const manifests = into;
  for (const entry of k.resources ?? []) {
    const path = resolve(dir, entry);
    if (statSync(path).isDirectory()) manifests.push(...build(path));
    else
      manifests.push(
        ...parseAllDocuments(readFileSync(path, 'utf8'))
          .map((d) => d.toJS() as Manifest)
          .filter(Boolean),
      );
  }
  // A component adds its resources and patches what the including kustomization has so far.
  for (const component of k.components ?? []) build(resolve(dir, component), manifests);
  for (const { target, patch } of k.patches ?? []) {
    const index = manifests.findIndex((m) => m.kind === target.kind && m.metadata.name === target.name);
    if (index < 0) throw new Error(`${dir}: no ${target.kind} ${target.name} to patch`);
    manifests[index] = fastJsonPatch.applyPatch(
      structuredClone(manifests[index]!),
      parse(patch) as Operation[],
      true,
      false,
    ).newDocument;
  }
  return manifests;
}

/** A kustomization made on the fly: `resources` and `components` relative to deploy/. */
export function composedManifests(resources: string[], components: string[]): Manifest[] {
  const dir = mkdtempSync(join(tmpdir(), 'kata-admission-kustomize-'));
  const abs = (p: string) => join(DEPLOY, p);
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    stringify({ resources: resources.map(abs), components: components.map(abs) }),
  );
  try {
    return build(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** deploy/ (the base), or one of its overlays such as 'enforce'. */
export function deployManifests(overlay = ''): Manifest[] {
  return build(join(DEPLOY, overlay));
}

export function manifest(kind: string, name?: string, overlay = ''): Manifest {
  const found = deployManifests(overlay).find((m) => m.kind === kind && (!name || m.metadata.name === name));
  if (!found) throw new Error(`deploy/${overlay} has no ${kind} ${name ?? ''}`);
  return found;
}

/** The config the ConfigMap ships. */
export function deployConfigYaml(): string {
  return manifest('ConfigMap', 'kata-admission-config').data['config.yaml'];
}
