// Where content verdicts live: in memory for the CLI and a local serve, as ImageVerdict objects in
// the cluster (src/images/content/cluster-store.ts) for replicas. Admissions read them synchronously.
import type { ContentVerdict } from './scanner.js';

export type Phase = 'Scanning' | 'Scanned' | 'Stopped' | 'Failed';

/** A build of this image that failed in a sandbox the way an image of `class` does. */
export interface Finding {
  class: '32-bit' | 'legacy-glibc';
  /** namespace/name of the pod that failed, and its container. */
  pod: string;
  container: string;
  /** The route it failed on. */
  route: string;
  /** What matched: the message, or the exit code and how soon it came. */
  evidence: string;
  at: number;
}

/** Findings kept per image: enough to show a pattern, bounded whatever the builds do. */
export const MAX_FINDINGS = 5;

export interface StoredVerdict {
  digest: string;
  /** A reference the image was scanned as (repository@digest). */
  image: string;
  phase: Phase;
  verdict?: ContentVerdict;
  /** An operator's decision: this route, whatever the content says. */
  override?: { route: string; reason: string };
  /** Builds of the image that failed in a sandbox, newest last. */
  findings?: Finding[];
  scanner: string;
  claimedAt: number;
  lastAdmitted?: number;
  /** Failed scans in a row: each doubles the wait before the next try. */
  attempts?: number;
  /** When the object was made (an operator's override may have no claim at all). */
  createdAt?: number;
  /** The object's version, for deletes that must not remove what someone just changed. */
  resourceVersion?: string;
}

export interface VerdictStore {
  get(digest: string): StoredVerdict | undefined;
  /** Whether the digest is to be scanned (no verdict, an abandoned claim, a failure old enough): no API call. */
  scannable(digest: string): boolean;
  /** Whether this process should scan the digest now; the claim is visible to other replicas. */
  claim(digest: string, image: string): Promise<boolean>;
  record(digest: string, image: string, verdict: ContentVerdict): Promise<void>;
  /** Adds a finding (creating the verdict object if need be); false when this pod's container was already recorded. */
  learn(digest: string, image: string, finding: Finding): Promise<boolean>;
  /** An admission used this digest's verdict (stored lazily: not an API call per admission). */
  admitted(digest: string): void;
  size(): number;
  /** Forgets verdicts no admission used for the configured time; returns how many. */
  collect(now?: number): Promise<number>;
  stop(): void;
}

export interface StoreTimes {
  /** A claim older than this was abandoned (its scanner died): another may take it. */
  staleClaimMs: number;
  /** A failed scan (registry unreachable) is tried again after this. */
  retryFailedMs: number;
  forgetAfterMs: number;
  /** A verdict whose scan failed is forgotten sooner: it holds nothing learned. */
  forgetFailedAfterMs: number;
}

/** Whether a stored verdict leaves the digest to be scanned (again). */
export function claimable(stored: StoredVerdict | undefined, times: StoreTimes, now: number): boolean {
  if (!stored) return true;
  if (stored.phase === 'Scanning') return now - stored.claimedAt > times.staleClaimMs;
  if (stored.phase === 'Failed') return now - stored.claimedAt > retryAfter(stored, times);
  return false;
}

/** The wait before a failed scan is tried again: retryFailed, doubled per failure, at most forgetFailedAfter. */
function retryAfter(stored: StoredVerdict, times: StoreTimes): number {
  const doublings = Math.min(20, Math.max(0, (stored.attempts ?? 1) - 1));
  return Math.min(times.retryFailedMs * 2 ** doublings, times.forgetFailedAfterMs);
}

/** Whether collection deletes it now: never an override; failed ones soon; others once unused. */
export function collectable(stored: StoredVerdict, times: StoreTimes, now: number): boolean {
  if (stored.override) return false;
  if (stored.phase === 'Failed' && stored.verdict) return now - lastUsed(stored) > times.forgetFailedAfterMs;
  return now - lastUsed(stored) > times.forgetAfterMs;
}

export function phaseOf(verdict: ContentVerdict): Phase {
  return verdict.outcome === 'scanned' ? 'Scanned' : verdict.outcome === 'stopped' ? 'Stopped' : 'Failed';
}

/** The time an unused verdict is measured from: its last use, its claim, else its creation. */
export const lastUsed = (stored: StoredVerdict) =>
  stored.lastAdmitted ?? (stored.claimedAt || (stored.createdAt ?? 0));

/** The findings with this one added (the oldest dropped past MAX_FINDINGS); undefined when already there. */
export function withFinding(findings: Finding[] = [], finding: Finding): Finding[] | undefined {
  if (findings.some((f) => f.pod === finding.pod && f.container === finding.container)) return undefined;
  return [...findings, finding].slice(-MAX_FINDINGS);
}

/** Failed scans in a row once this verdict is recorded. */
export const attemptsAfter = (before: StoredVerdict | undefined, verdict: ContentVerdict) =>
  verdict.outcome === 'failed' ? (before?.phase === 'Failed' ? (before.attempts ?? 1) : 0) + 1 : 0;

export class MemoryVerdictStore implements VerdictStore {
  private readonly verdicts = new Map<string, StoredVerdict>();
  private readonly timer: NodeJS.Timeout | undefined;

  /** With `collectMs`, unused verdicts are collected that often (a long-running serve). */
  constructor(
    private readonly times: StoreTimes,
    private readonly scanner = 'local',
    collectMs?: number,
  ) {
    if (collectMs) this.timer = setInterval(() => void this.collect(), collectMs).unref();
  }

  get(digest: string) {
    return this.verdicts.get(digest);
  }

  scannable(digest: string) {
    return claimable(this.verdicts.get(digest), this.times, Date.now());
  }

  claim(digest: string, image: string): Promise<boolean> {
    const now = Date.now();
    if (!this.scannable(digest)) return Promise.resolve(false);
    this.verdicts.set(digest, { digest, image, phase: 'Scanning', scanner: this.scanner, claimedAt: now });
    return Promise.resolve(true);
  }

  record(digest: string, image: string, verdict: ContentVerdict): Promise<void> {
    const before = this.verdicts.get(digest);
    this.verdicts.set(digest, {
      ...before,
      digest,
      image,
      phase: phaseOf(verdict),
      verdict,
      scanner: this.scanner,
      claimedAt: before?.claimedAt ?? Date.now(),
      attempts: attemptsAfter(before, verdict),
    });
    return Promise.resolve();
  }

  learn(digest: string, image: string, finding: Finding): Promise<boolean> {
    const before = this.verdicts.get(digest);
    const findings = withFinding(before?.findings, finding);
    if (!findings) return Promise.resolve(false);
    this.verdicts.set(digest, {
      phase: 'Failed',
      scanner: this.scanner,
      claimedAt: 0,
      ...before,
      digest,
      image,
      findings,
    });
    return Promise.resolve(true);
  }

  admitted(digest: string) {
    const stored = this.verdicts.get(digest);
    if (stored) stored.lastAdmitted = Date.now();
  }

  size() {
    return this.verdicts.size;
  }

  collect(now = Date.now()): Promise<number> {
    let count = 0;
    for (const [digest, stored] of this.verdicts)
      if (collectable(stored, this.times, now) && this.verdicts.delete(digest)) count++;
    return Promise.resolve(count);
  }

  stop() {
    clearInterval(this.timer);
  }
}

/** The store's times from the content config: a claim is stale after twice the scan's time cap. */
export function storeTimes(config: {
  maxImageSeconds: number;
  retryFailedSeconds: number;
  forgetAfterSeconds: number;
  failedForgetAfterSeconds: number;
}): StoreTimes {
  return {
    staleClaimMs: (config.maxImageSeconds * 2 + 60) * 1000,
    retryFailedMs: config.retryFailedSeconds * 1000,
    forgetAfterMs: config.forgetAfterSeconds * 1000,
    forgetFailedAfterMs: config.failedForgetAfterSeconds * 1000,
  };
}
