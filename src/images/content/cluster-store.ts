// Content verdicts as ImageVerdict objects (deploy/crd.yaml): every replica reads them through an
// informer (no API call per admission), a claim is a create-if-absent, an operator overrides with
// spec.override. Writes other than the claim and the result are batched: admissions mark digests
// used, and a timer stores lastAdmitted at most once per digest and period.
import { apiStatus } from '../../kube/api.js';
import {
  CustomObjectsApi,
  makeInformer,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { ContentVerdict } from './scanner.js';
import {
  attemptsAfter,
  claimable,
  collectable,
  lastUsed,
  phaseOf,
  withFinding,
  type Finding,
  type StoreTimes,
  type StoredVerdict,
  type VerdictStore,
} from './store.js';

export const VERDICT_API = { group: 'kata-admission.io', version: 'v1alpha1', plural: 'imageverdicts' };
const DETAIL_LIMIT = 300;

export interface ImageVerdictObject extends KubernetesObject {
  spec?: { digest?: string; image?: string; override?: { route?: string; reason?: string } };
  status?: {
    phase?: StoredVerdict['phase'];
    class?: ContentVerdict['class'];
    outcome?: ContentVerdict['outcome'];
    detail?: string;
    os?: string;
    glibc?: string;
    elf32Count?: number;
    evidence?: string[];
    bytes?: number;
    seconds?: number;
    scanner?: string;
    claimedAt?: string;
    scannedAt?: string;
    lastAdmitted?: string;
    attempts?: number;
    findings?: {
      class: Finding['class'];
      pod: string;
      container: string;
      route: string;
      evidence: string;
      at: string;
    }[];
  };
}

/** The object name for a digest: sha256:abc -> sha256-abc (a DNS subdomain). */
export const verdictName = (digest: string) => digest.replace(':', '-').toLowerCase();

export interface ClusterStoreOptions extends StoreTimes {
  scanner: string;
  /** How often used digests' lastAdmitted is stored, and unused verdicts collected. */
  flushMs: number;
  onChange?: (size: number) => void;
  onError?: (error: unknown, what: string) => void;
}

export class ClusterVerdictStore implements VerdictStore {
  private readonly api: CustomObjectsApi;
  private readonly verdicts = new Map<string, StoredVerdict>();
  private readonly used = new Set<string>();
  private readonly informer;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly synced: Promise<void>;

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: ClusterStoreOptions,
  ) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    const { group, version, plural } = VERDICT_API;
    this.informer = makeInformer<ImageVerdictObject>(kubeConfig, `/apis/${group}/${version}/${plural}`, () =>
      this.api.listClusterCustomObject({ group, version, plural }),
    );
    const changed = (object: ImageVerdictObject) => {
      const stored = fromObject(object);
      if (stored) this.verdicts.set(stored.digest, stored);
      options.onChange?.(this.verdicts.size);
    };
    this.informer.on('add', changed);
    this.informer.on('update', changed);
    this.informer.on('delete', (object) => {
      const digest = object.spec?.digest;
      if (digest) this.verdicts.delete(digest);
      options.onChange?.(this.verdicts.size);
    });
    this.informer.on('error', (error) => {
      options.onError?.(error, 'watch');
      if (!this.stopped) setTimeout(() => void this.informer.start().catch(() => {}), 5000).unref();
    });
    this.synced = this.informer.start();
    this.synced.catch((error: unknown) => options.onError?.(error, 'list'));
    this.timer = setInterval(() => void this.flush(), options.flushMs);
    this.timer.unref();
  }

  get(digest: string) {
    return this.verdicts.get(digest);
  }

  size() {
    return this.verdicts.size;
  }

  scannable(digest: string) {
    return claimable(this.verdicts.get(digest), this.options, Date.now());
  }

  admitted(digest: string) {
    this.used.add(digest);
  }

  async claim(digest: string, image: string): Promise<boolean> {
    const now = Date.now();
    const known = this.verdicts.get(digest);
    if (!claimable(known, this.options, now)) return false;
    const claim: ImageVerdictObject = {
      apiVersion: `${VERDICT_API.group}/${VERDICT_API.version}`,
      kind: 'ImageVerdict',
      metadata: { name: verdictName(digest) },
      spec: { digest, image },
      status: {
        phase: 'Scanning',
        scanner: this.options.scanner,
        claimedAt: new Date(now).toISOString(),
      },
    };
    try {
      if (!known) await this.api.createClusterCustomObject({ ...VERDICT_API, body: claim });
      else {
        // Taking over a stale claim or a failed scan: only if nobody changed it since we saw it.
        const current = (await this.api.getClusterCustomObject({
          ...VERDICT_API,
          name: verdictName(digest),
        })) as ImageVerdictObject;
        const stored = fromObject(current);
        if (!claimable(stored, this.options, now)) return false;
        await this.api.replaceClusterCustomObject({
          ...VERDICT_API,
          name: verdictName(digest),
          body: { ...current, status: { ...current.status, ...claim.status } },
        });
      }
    } catch (error) {
      if (apiStatus(error) === 409) return false; // another replica claimed it first
      throw error;
    }
    this.verdicts.set(digest, {
      ...(known ?? {}),
      digest,
      image,
      phase: 'Scanning',
      scanner: this.options.scanner,
      claimedAt: now,
    });
    return true;
  }

  /** Stores a scan's result (creating the object when the CLI writes without a claim). */
  async record(digest: string, image: string, verdict: ContentVerdict): Promise<void> {
    const status = statusOf(verdict, this.options.scanner, this.verdicts.get(digest));
    await this.patchOrCreate(digest, image, [{ op: 'add', path: '/status', value: status }], status);
    const before = this.verdicts.get(digest);
    this.verdicts.set(digest, {
      ...before,
      ...fromObject({ spec: { digest, image }, status })!,
      ...(before?.override && { override: before.override }),
    });
  }

  /** Adds a finding to the object's status (creating the object for an image nobody scanned yet). */
  async learn(digest: string, image: string, finding: Finding): Promise<boolean> {
    const before = this.verdicts.get(digest);
    const findings = withFinding(before?.findings, finding);
    if (!findings) return false;
    const value = findings.map(findingObject);
    const status = { phase: 'Failed' as const, findings: value };
    await this.patchOrCreate(
      digest,
      image,
      before?.phase
        ? [{ op: 'add', path: '/status/findings', value }]
        : [{ op: 'add', path: '/status', value: status }],
      status,
    );
    this.verdicts.set(digest, {
      phase: 'Failed',
      scanner: '',
      claimedAt: 0,
      ...before,
      digest,
      image,
      findings,
    });
    return true;
  }

  /** Patches the digest's object; when there is none yet, creates it with `status`. */
  private async patchOrCreate(
    digest: string,
    image: string,
    patch: object[],
    status: ImageVerdictObject['status'],
  ): Promise<void> {
    const name = verdictName(digest);
    try {
      await this.api.patchClusterCustomObject({ ...VERDICT_API, name, body: patch });
    } catch (error) {
      if (apiStatus(error) !== 404) throw error;
      await this.api.createClusterCustomObject({
        ...VERDICT_API,
        body: {
          apiVersion: `${VERDICT_API.group}/${VERDICT_API.version}`,
          kind: 'ImageVerdict',
          metadata: { name },
          spec: { digest, image },
          status,
        },
      });
    }
  }

  /** Stores lastAdmitted for digests used since the last flush (when older than a tenth of forgetAfter), then collects. */
  async flush(now = Date.now()): Promise<void> {
    const refresh = Math.max(60_000, this.options.forgetAfterMs / 10);
    for (const digest of [...this.used]) {
      this.used.delete(digest);
      const stored = this.verdicts.get(digest);
      if (!stored || now - lastUsed(stored) < refresh) continue;
      stored.lastAdmitted = now;
      await this.api
        .patchClusterCustomObject({
          ...VERDICT_API,
          name: verdictName(digest),
          body: [{ op: 'add', path: '/status/lastAdmitted', value: new Date(now).toISOString() }],
        })
        .catch((error: unknown) => this.options.onError?.(error, 'lastAdmitted'));
    }
    await this.collect(now).catch((error: unknown) => this.options.onError?.(error, 'collect'));
  }

  async collect(now = Date.now()): Promise<number> {
    let count = 0;
    for (const stored of [...this.verdicts.values()]) {
      if (this.used.has(stored.digest) || !collectable(stored, this.options, now)) continue;
      try {
        // Only the version judged here: an override or a claim written since keeps the object.
        await this.api.deleteClusterCustomObject({
          ...VERDICT_API,
          name: verdictName(stored.digest),
          ...(stored.resourceVersion && {
            body: { preconditions: { resourceVersion: stored.resourceVersion } },
          }),
        });
      } catch (error) {
        const code = apiStatus(error);
        if (code === 409) continue;
        if (code !== 404) throw error;
      }
      this.verdicts.delete(stored.digest);
      count++;
    }
    return count;
  }

  stop() {
    this.stopped = true;
    clearInterval(this.timer);
    void this.informer.stop();
  }
}

function statusOf(verdict: ContentVerdict, scanner: string, before: StoredVerdict | undefined) {
  return {
    phase: phaseOf(verdict),
    class: verdict.class,
    outcome: verdict.outcome,
    detail: verdict.detail.slice(0, DETAIL_LIMIT),
    ...(verdict.os && { os: verdict.os.slice(0, 64) }),
    ...(verdict.glibc && { glibc: verdict.glibc.slice(0, 16) }),
    elf32Count: verdict.elf32Count,
    evidence: verdict.evidence.slice(0, 5).map((path) => path.slice(0, 512)),
    attempts: attemptsAfter(before, verdict),
    bytes: verdict.bytes,
    seconds: Math.round(verdict.seconds * 1000) / 1000,
    scanner,
    claimedAt: new Date(before?.claimedAt ?? Date.now()).toISOString(),
    scannedAt: new Date().toISOString(),
    ...(before?.lastAdmitted && { lastAdmitted: new Date(before.lastAdmitted).toISOString() }),
    // A scan's result does not erase what builds of the image showed.
    ...(before?.findings && { findings: before.findings.map(findingObject) }),
  };
}

const findingObject = (f: Finding) => ({
  class: f.class,
  pod: f.pod.slice(0, 317),
  container: f.container.slice(0, 63),
  route: f.route.slice(0, 63),
  evidence: f.evidence.slice(0, 256),
  at: new Date(f.at).toISOString(),
});

/** The stored form of an object; undefined for one without a digest. */
function fromObject(object: ImageVerdictObject): StoredVerdict | undefined {
  const { spec = {}, status = {} } = object;
  if (!spec.digest) return undefined;
  const time = (value: string | undefined) => (value ? Date.parse(value) : undefined);
  const verdict: ContentVerdict | undefined =
    status.class && status.outcome
      ? {
          class: status.class,
          outcome: status.outcome,
          detail: status.detail ?? '',
          ...(status.os && { os: status.os }),
          ...(status.glibc && { glibc: status.glibc }),
          elf32Count: status.elf32Count ?? 0,
          evidence: status.evidence ?? [],
          bytes: status.bytes ?? 0,
          seconds: status.seconds ?? 0,
        }
      : undefined;
  const lastAdmitted = time(status.lastAdmitted);
  const created = object.metadata?.creationTimestamp as Date | string | undefined;
  const createdAt = created instanceof Date ? created.getTime() : time(created);
  return {
    digest: spec.digest,
    image: spec.image ?? '',
    // An object an operator made (an override, no scan yet) leaves the scan to be done.
    phase: status.phase ?? 'Failed',
    ...(verdict && { verdict }),
    ...(spec.override?.route && {
      override: { route: spec.override.route, reason: spec.override.reason ?? '' },
    }),
    scanner: status.scanner ?? '',
    claimedAt: time(status.claimedAt) ?? 0,
    ...(lastAdmitted !== undefined && { lastAdmitted }),
    ...(status.attempts !== undefined && { attempts: status.attempts }),
    ...(createdAt !== undefined && !Number.isNaN(createdAt) && { createdAt }),
    ...(status.findings?.length && {
      findings: status.findings.map((f) => ({ ...f, at: time(f.at) ?? 0 })),
    }),
    ...(object.metadata?.resourceVersion && { resourceVersion: object.metadata.resourceVersion }),
  };
}
