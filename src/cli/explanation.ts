// `explain`: the admission path run on one pod, told for a person.
import type { ReviewOutcome } from '../admission/review.js';
import { CONTAINER_KINDS, type Pod } from '../kube/pod.js';
import { unverifiedMemory } from '../policy/mutate/memory.js';
import type { Policy } from '../policy/policy.js';
import type { ImageVerdict } from '../policy/decide.js';
import { classRoute } from '../policy/rules/image-class.js';
import { UsageError } from './input.js';

/** Wraps a bare Pod in the CREATE review the API server would send, so explain takes the server's path. */
export function reviewForPod(document: unknown, policy: Policy): unknown {
  const object = document as { kind?: string; metadata?: { namespace?: string } } | null;
  if (object?.kind === 'AdmissionReview') return document;
  if (typeof object?.kind === 'string' && object.kind !== 'Pod') {
    throw new UsageError(
      `explain takes a Pod or an AdmissionReview, got a ${object.kind}: explain the pod it makes (its pod template as a Pod)`,
    );
  }
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'kata-admission-explain',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: object?.metadata?.namespace ?? policy.config.namespaces[0],
      object: document,
    },
  };
}

/**
 * A pod this webhook routed to a route with a runtime class, whose nodeSelector another webhook then
 * set on a pool key: the RuntimeClass plugin refuses it, and this webhook is not asked again.
 */
function conflictNotes(pod: Pod | undefined, policy: Policy): string[] {
  const route = pod && policy.routeOf(pod);
  if (!pod || !route?.runtimeClassName || pod.spec?.runtimeClassName !== route.runtimeClassName) return [];
  return Object.entries(pod.spec?.nodeSelector ?? {})
    .filter(([key, value]) => route.nodeSelector[key] !== undefined && route.nodeSelector[key] !== value)
    .map(
      ([key, value]) =>
        `nodeSelector ${key}=${value} conflicts with RuntimeClass "${route.runtimeClassName}" (it schedules onto ${key}=${route.nodeSelector[key]}): ` +
        'another mutating webhook set it after kata-admission routed the pod, and the API server refuses such a pod (docs/install.md: Troubleshooting)',
    );
}

/** A long value (the annotations, a whole affinity) is cut for a person; `review` prints the whole patch. */
const shortened = (json: string, limit = 100) => (json.length <= limit ? json : `${json.slice(0, limit)}...`);

/** One line per route: its runtime and pool, and the rules that send builds there. */
function routeLines(policy: Policy): string[] {
  const { defaultRoute, fallbackRoute, imageInspection } = policy.config;
  return policy.routes.map((r) => {
    const pool =
      Object.entries(r.nodeSelector)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || 'any node';
    const by = [
      r.name === defaultRoute && 'default',
      r.name === fallbackRoute && 'fallback',
      ...Object.entries(imageInspection.classRoutes)
        .filter(([, route]) => route === r.name)
        .map(([cls]) => `class ${cls}`),
      policy.exclusions.some((e) => e.route === r.name) && 'exclusions',
      policy.pins.some((p) => p.route === r.name) && 'pins',
    ].filter(Boolean);
    return `  ${r.name}: runtime ${r.runtimeClassName ?? '(cluster default)'}, pool ${pool}${by.length ? `; ${by.join(', ')}` : ''}`;
  });
}

function imageLines(summary: Extract<ReviewOutcome, { ok: true }>['summary'], policy?: Policy): string[] {
  if (!summary.images) return [];
  return [
    'images:',
    ...[...summary.images].map(
      ([image, verdict]) =>
        `  ${image}: ${verdict.class} (${verdict.detail})${policy ? classRouteNote(policy, verdict.class) : ''}`,
    ),
  ];
}

/** The route an incompatible image's class goes to, for the images section. */
function classRouteNote(policy: Policy, cls: ImageVerdict['class']): string {
  return cls === '32-bit' || cls === 'legacy-glibc' ? ` -> route ${classRoute(policy, cls)}` : '';
}

export function explanation(
  outcome: Extract<ReviewOutcome, { ok: true }>,
  pod?: Pod,
  policy?: Policy,
): string {
  const { summary } = outcome;
  const notes = policy ? [...conflictNotes(pod, policy), ...policy.notes] : [];
  const lines = [
    `pod ${summary.name || '(unnamed)'} in namespace ${summary.namespace || '(none)'}, config ${summary.configHash}`,
  ];
  if (policy && outcome.kind === 'patched') lines.push('routes:', ...routeLines(policy));
  if (outcome.kind === 'allowed') {
    lines.push(`not a build pod: ${summary.skipped}; admitted unchanged`);
    return lines.join('\n') + '\n';
  }
  if (outcome.kind === 'denied') {
    lines.push(`refused: ${summary.denied}`);
    return lines.join('\n') + '\n';
  }
  const d = summary.decision!;
  lines.push(
    `route:   ${d.route}`,
    `reason:  ${d.rule}: ${d.detail}`,
    `bucket:  ${d.bucket} (rollout key "${d.rolloutKey}")`,
  );
  lines.push(...imageLines(summary, policy));
  lines.push(summary.patch.length === 0 ? 'changes: none' : 'changes:');
  for (const op of summary.patch) {
    lines.push(
      `  ${op.op.padEnd(7)} ${op.path}${'value' in op ? ` = ${shortened(JSON.stringify(op.value))}` : ''}`,
    );
  }
  if (summary.warnings.length > 0) lines.push('warnings:', ...summary.warnings.map((w) => `  - ${w}`));
  if (notes.length > 0) lines.push('notes:', ...notes.map((n) => `  - ${n}`));
  return lines.join('\n') + '\n';
}

/**
 * A pod kata-admission already routed (the API server's copy): its stored decision, read from its
 * annotations, and where a build like it would go now. Nothing is mutated again: the changes were
 * made when it was admitted, and the memory of what it replaced is sealed for the webhook alone.
 */
export function storedExplanation(
  outcome: Extract<ReviewOutcome, { ok: true }>,
  pod: Pod,
  policy: Policy,
): string {
  const annotations = pod.metadata?.annotations ?? {};
  const keys = policy.annotations;
  const { summary } = outcome;
  const spec: NonNullable<Pod['spec']> = pod.spec ?? { containers: [] };
  const privileged = CONTAINER_KINDS.flatMap((kind) => spec[kind] ?? [])
    .filter((c) => c.securityContext?.privileged === true)
    .map((c) => c.name);
  const lines = [
    `pod ${summary.name || '(unnamed)'} in namespace ${summary.namespace || '(none)'}: routed by kata-admission (config ${annotations[keys.config] ?? '?'}; this config ${policy.hash})`,
    `route:   ${annotations[keys.route]}`,
    `reason:  ${annotations[keys.reason] ?? '?'}: ${annotations[keys.detail] ?? ''}`,
    `bucket:  ${annotations[keys.bucket] ?? '?'}`,
    `as stored: runtime ${spec.runtimeClassName ?? '(cluster default)'}, nodeSelector ${JSON.stringify(spec.nodeSelector ?? {})}, privileged ${privileged.join(', ') || 'none'}, service account token ${spec.automountServiceAccountToken === false ? 'off' : 'on'}`,
  ];
  const where = pod.spec?.nodeName ? `node ${pod.spec.nodeName}` : 'not scheduled';
  if (pod.status?.phase) lines.push(`where:   ${pod.status.phase}, ${where}`);
  lines.push(...changedAtAdmission(annotations[keys.submitted]), ...imageLines(summary, policy));
  const now = summary.decision;
  if (now) lines.push(`now:     a build like it would go to ${now.route} (${now.rule}: ${now.detail})`);
  return lines.join('\n') + '\n';
}

/**
 * What the webhook replaced, from the pod's memory annotation. Only the webhook holds the key
 * that verifies it, so this reads it as the pod carries it and says so.
 */
function changedAtAdmission(text: string | undefined): string[] {
  const memory = unverifiedMemory(text);
  if (!memory || Object.keys(memory).length === 0) return [];
  const show = (v: unknown) => (v === undefined || v === null ? '(none)' : shortened(JSON.stringify(v)));
  return [
    "changed at admission (as the pod's memory annotation says; only the webhook can verify it):",
    ...Object.entries(memory).map(([field, { was, wrote }]) => `  ${field}: ${show(was)} -> ${show(wrote)}`),
  ];
}
