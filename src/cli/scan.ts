// `kata-admission scan`: reads images' content now and prints class, route and evidence for each;
// with --write, stores the verdicts as ImageVerdict objects before the first build needs them.
import type { KubeConfig } from '@kubernetes/client-node';
import { ClusterVerdictStore, verdictName } from '../images/content/cluster-store.js';
import { NO_CONTENT_EVENTS } from '../images/content/checks.js';
import { ContentScanner, type ContentVerdict } from '../images/content/scanner.js';
import type { ContentScanningConfig } from '../config/schema.js';
import { storeTimes, type Finding } from '../images/content/store.js';
import { endpointsFor } from '../images/inspector.js';
import { parseReference } from '../images/reference.js';
import { RegistryClient } from '../images/registry.js';
import type { Policy } from '../policy/policy.js';
import { classRoute, learnedRoute } from '../policy/rules/image-class.js';
import { UsageError } from './input.js';

export interface ScanOptions {
  json: boolean;
  /** Store the verdicts in this cluster. */
  write?: KubeConfig;
  progress: (line: string) => void;
}

export interface ScanLine {
  image: string;
  digest?: string;
  class: ContentVerdict['class'];
  /** Where the class sends builds; absent when the scan decided nothing (it failed or stopped). */
  route?: string;
  outcome: ContentVerdict['outcome'];
  detail: string;
  os?: string;
  glibc?: string;
  elf32Count: number;
  evidence: string[];
  bytes: number;
  /** Builds of the image that failed in a sandbox (from the cluster's ImageVerdict, with --write). */
  findings?: Finding[];
}

/** Scans each image in turn; returns one line per image (failed ones included). */
export async function scanImages(
  images: string[],
  policy: Policy,
  options: ScanOptions,
): Promise<ScanLine[]> {
  const refs = images.map((image) => {
    const ref = parseReference(image);
    if (!ref) throw new UsageError(`"${image}" is not a valid image reference`);
    return { image, ref };
  });
  const config = policy.config.imageInspection;
  const client = new RegistryClient(endpointsFor(config));
  const scanner = new ContentScanner(client, config.content, {
    ...NO_CONTENT_EVENTS,
    layer: (repository, index, count, bytes) =>
      options.progress(
        `  ${repository}: layer ${index}/${count} (${(bytes / 1024 / 1024).toFixed(1)} MiB read)`,
      ),
  });
  const store = options.write ? commandVerdictStore(options.write, config.content, 'scan') : undefined;
  const lines: ScanLine[] = [];
  try {
    // What the cluster already holds (findings of failed builds), so a result keeps it.
    await store?.synced;
    for (const [i, { image, ref }] of refs.entries()) {
      options.progress(`scanning ${image} (${i + 1}/${refs.length})`);
      const verdict = await scanner.scan(ref);
      if (store && verdict.digest) {
        await store.record(verdict.digest, `${ref.registry}/${ref.repository}@${verdict.digest}`, verdict);
        options.progress(
          `  wrote ImageVerdict ${verdictName(verdict.digest)} (${verdict.class}, ${verdict.outcome})`,
        );
      }
      const findings = verdict.digest ? store?.get(verdict.digest)?.findings : undefined;
      lines.push(lineOf(image, verdict, policy, findings));
    }
  } finally {
    store?.stop();
  }
  return lines;
}

function lineOf(image: string, verdict: ContentVerdict, policy: Policy, findings?: Finding[]): ScanLine {
  const { digest, class: cls, outcome, detail, os, glibc, elf32Count, evidence, bytes } = verdict;
  // As an admission would route it: a finding outweighs a scan that found nothing.
  const learned = findings?.at(-1);
  const route =
    learned && cls === 'ok'
      ? (learnedRoute(policy, learned.class, learned.route) ?? classRoute(policy, cls))
      : classRoute(policy, cls);
  return {
    image,
    ...(digest && { digest }),
    class: cls,
    ...(outcome === 'scanned' && { route }),
    ...(findings?.length && { findings }),
    outcome,
    detail,
    ...(os && { os }),
    ...(glibc && { glibc }),
    elf32Count,
    evidence,
    bytes,
  };
}

/** The cluster's verdicts as a one-shot command reads and writes them (it never waits to flush). */
export function commandVerdictStore(
  kubeConfig: KubeConfig,
  config: ContentScanningConfig,
  command: string,
): ClusterVerdictStore {
  return new ClusterVerdictStore(kubeConfig, {
    ...storeTimes(config),
    scanner: `kata-admission ${command}`,
    flushMs: 3_600_000,
  });
}

/** One block per image, for people. */
export function scanText(lines: ScanLine[]): string {
  return lines
    .map((l) =>
      [
        `${l.image}`,
        `  digest:   ${l.digest ?? '(not resolved)'}`,
        `  class:    ${l.class}${l.outcome === 'scanned' ? '' : ` (${l.outcome})`}`,
        `  route:    ${l.route ?? `(none: the scan ${l.outcome}, so builds go by the registry config)`}`,
        `  detail:   ${l.detail}`,
        ...(l.evidence.length > 0 ? [`  evidence: ${l.evidence.join(', ')}`] : []),
        ...(l.findings ?? []).map(
          (f) => `  finding:  ${f.class}: build ${f.pod} failed on ${f.route} (${f.evidence})`,
        ),
      ].join('\n'),
    )
    .join('\n\n')
    .concat('\n');
}
