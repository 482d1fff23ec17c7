// The manifests of deploy/ as the e2e tests apply them: the kustomization's resources, in order.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';

export const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: any;
}

export function deployManifests(): Manifest[] {
  const kustomization = parse(readFileSync(`${DEPLOY}kustomization.yaml`, 'utf8')) as { resources: string[] };
  return kustomization.resources.flatMap((file) =>
    parseAllDocuments(readFileSync(`${DEPLOY}${file}`, 'utf8')).map((d) => d.toJS() as Manifest).filter(Boolean));
}

export function manifest(kind: string, name?: string): Manifest {
  const found = deployManifests().find((m) => m.kind === kind && (!name || m.metadata.name === name));
  if (!found) throw new Error(`deploy/ has no ${kind} ${name ?? ''}`);
  return found;
}

/** The config the ConfigMap ships. */
export function deployConfigYaml(): string {
  return manifest('ConfigMap', 'kata-admission-config').data['config.yaml'];
}
