// The one admission path, shared by the HTTPS server and the `review`/`explain` commands:
// decode -> select -> decide -> mutate -> diff -> respond.
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { decide, NO_IMAGE_FACTS, rolloutKeyOf, type Decision, type ImageFacts } from '../policy/decide.js';
import { mutate, mutateEphemeral, type Mutation } from '../policy/mutate/index.js';
import { violations } from '../policy/invariants.js';
import type { MemorySeal } from '../policy/seal.js';
import type { RuntimeClassOverheads } from '../policy/mutate/step.js';
import { buildPodProblem, labelsOf, podImages, type Pod } from '../kube/pod.js';
import type { Requester } from '../images/content/checks.js';
import type { Policy } from '../policy/policy.js';
import { decodeAdmissionReview, type AdmissionRequest } from './decode.js';
import { admissionReview, allowed, denied, patched, type AdmissionReviewResponse } from './respond.js';

export interface ReviewDeps {
  policy: Policy;
  /** Registry facts for these images (rule 3); absent when inspection is off. */
  inspectImages?: (images: string[], requester: Requester) => Promise<ImageFacts>;
  /** The key replicas share for the submitted-value memory; without one, the policy's own. */
  seal?: MemorySeal;
  /** The cluster's RuntimeClass overheads, as last read (none without cluster access). */
  overheads?: () => RuntimeClassOverheads;
}

/** The review's dependencies for a policy, with image inspection when an inspector is given. */
export function reviewDepsFor(
  policy: Policy,
  inspector?: { inspect(images: string[], requester: Requester): Promise<ImageFacts> },
  seal?: MemorySeal,
  overheads?: () => RuntimeClassOverheads,
): ReviewDeps {
  return {
    policy,
    ...(inspector && { inspectImages: (images, requester) => inspector.inspect(images, requester) }),
    ...(seal && { seal }),
    ...(overheads && { overheads }),
  };
}

/** What happened, for logs, metrics and `explain`; the response itself is in `review`. */
export interface ReviewSummary {
  uid: string;
  namespace: string;
  name: string;
  operation: string;
  dryRun: boolean;
  /** Why the request was let through untouched, when it was not a build pod CREATE. */
  skipped?: string;
  decision?: Decision;
  /** What registry inspection found for each image, when it ran. */
  images?: ImageFacts;
  patch: Operation[];
  warnings: string[];
  /** Why a build pod was refused. */
  denied?: string;
  configHash: string;
}

/**
 * What happened: `allowed` (not the webhook's business, let through untouched), `patched` (routed;
 * the patch may be empty), `denied` (refused, with the reason in the summary), `errored` (the
 * request itself is not a valid AdmissionReview: a 400, no response).
 */
export type ReviewOutcome =
  | {
      ok: true;
      kind: 'allowed' | 'patched' | 'denied';
      review: AdmissionReviewResponse;
      summary: ReviewSummary;
    }
  | { ok: false; kind: 'errored'; error: string };

export async function reviewAdmission(body: unknown, deps: ReviewDeps): Promise<ReviewOutcome> {
  const decoded = decodeAdmissionReview(body);
  if (!decoded.ok) return { ok: false, kind: 'errored', error: decoded.error };
  const { apiVersion, request } = decoded.review;
  const { policy } = deps;
  // Every exit builds the summary once, from what was found on the way.
  const answer: Answer = (kind, response, found) => ({
    ok: true,
    kind,
    review: admissionReview(apiVersion, request.uid, response),
    summary: { ...summaryOf(request, policy), ...found },
  });
  const refuse = (code: number, message: string, found: Found = {}) =>
    answer('denied', denied(code, message), { ...found, denied: message });

  const scope = scopeOf(request, policy);
  if (scope.kind === 'skip') return answer('allowed', allowed(), { skipped: scope.why });
  if (scope.kind === 'deny') return refuse(403, scope.why);
  // From here on this is a build pod: if it cannot be routed, it is refused, never let through unrouted.
  const problem = buildPodProblem(request.object);
  if (problem) return refuse(400, `kata-admission cannot route this build pod: ${problem}`);
  const pod = request.object as Pod;
  try {
    const routed =
      scope.kind === 'ephemeral'
        ? existingRoute(pod, policy)
        : await decideRoute(pod, deps, requesterOf(request));
    if (typeof routed === 'string') return refuse(403, routed);
    return respond(pod, routed, scope, policy, answer, refuse);
  } catch (error) {
    return refuse(500, `kata-admission failed to route this build pod: ${(error as Error).message}`);
  }
}

type Found = Partial<
  Omit<ReviewSummary, 'uid' | 'namespace' | 'name' | 'operation' | 'dryRun' | 'configHash'>
>;
type Answer = (
  kind: 'allowed' | 'patched' | 'denied',
  response: Parameters<typeof admissionReview>[2],
  found: Found,
) => Extract<ReviewOutcome, { ok: true }>;
interface Routed {
  decision: Decision;
  mutation: Mutation;
  /** What registry inspection found, when it ran. */
  images?: ImageFacts;
}

/**
 * Enforce: what the webhook returns must hold every invariant (what it could not correct is
 * refused). Shadow: the submitted pod is checked, and what enforce mode would refuse is a warning.
 */
function respond(
  pod: Pod,
  { decision, mutation, images }: Routed,
  scope: Scope,
  policy: Policy,
  answer: Answer,
  refuse: (code: number, message: string, found: Found) => ReturnType<Answer>,
): ReturnType<Answer> {
  const found: Found = { decision, ...(images && { images }) };
  const route = policy.route(decision.route);
  const operation = scope.kind === 'ephemeral' ? 'EPHEMERAL' : 'CREATE';
  const enforce = policy.config.mode === 'enforce';
  const refused = violations(enforce ? mutation.pod : pod, route, policy, operation, !enforce);
  const warnings = [...(scope.kind === 'other' ? [scope.why] : []), ...mutation.warnings];
  if (refused.length > 0 && enforce) {
    const message = `kata-admission refuses this build pod on the ${decision.route} route: ${refused.join('; ')}`;
    return refuse(403, message, { ...found, warnings });
  }
  warnings.push(...refused.map((r) => `would be refused in enforce mode: ${r}`));
  const patch = fastJsonPatch.compare(pod, mutation.pod);
  const reason = `${decision.rule}: ${decision.detail}`;
  return answer('patched', patched(patch, warnings, { route: decision.route, reason }), {
    ...found,
    warnings,
    patch,
  });
}

function summaryOf(request: AdmissionRequest, policy: Policy): ReviewSummary {
  const object = request.object as Pod | undefined;
  return {
    uid: request.uid,
    namespace: request.namespace ?? '',
    name: request.name || object?.metadata?.name || object?.metadata?.generateName || '',
    operation: request.operation ?? '',
    dryRun: request.dryRun === true,
    patch: [],
    warnings: [],
    configHash: policy.hash,
  };
}

function requesterOf(request: AdmissionRequest): Requester {
  const user = request.userInfo?.username;
  return {
    user: typeof user === 'string' ? user : '',
    namespace: request.namespace ?? '',
    dryRun: request.dryRun === true,
  };
}

async function decideRoute(pod: Pod, deps: ReviewDeps, requester: Requester): Promise<Routed> {
  const images = deps.inspectImages ? await deps.inspectImages(podImages(pod), requester) : undefined;
  const decision = decide(pod, deps.policy, images ?? NO_IMAGE_FACTS);
  const context = {
    namespace: requester.namespace,
    seal: deps.seal ?? deps.policy.memorySeal,
    ...(deps.overheads && { overheads: deps.overheads() }),
  };
  const mutation = mutate(pod, decision, deps.policy, context, images);
  return { decision, mutation, ...(images && { images }) };
}

/** An ephemeral-containers update keeps the pod's route; a pod without a configured one gets none. */
function existingRoute(pod: Pod, policy: Policy): Routed | string {
  const route = policy.routeOf(pod);
  if (!route)
    return `kata-admission refuses ephemeral containers on a pod it never routed (${policy.annotations.route}: ${JSON.stringify(pod.metadata?.annotations?.[policy.annotations.route] ?? null)})`;
  const rolloutKey = rolloutKeyOf(pod, policy);
  const decision: Decision = {
    route: route.name,
    rule: 'existing-route',
    detail: `ephemeral containers of a pod routed to ${route.name}`,
    rolloutKey,
    bucket: policy.bucketOf(rolloutKey),
  };
  return { decision, mutation: mutateEphemeral(pod, route, policy, decision) };
}

type Scope =
  { kind: 'skip' | 'deny'; why: string } | { kind: 'build' | 'ephemeral' } | { kind: 'other'; why: string };

/** What this request is to the webhook: a build CREATE, a pod routed like one, an ephemeral update, or none of its business. */
function scopeOf(request: AdmissionRequest, policy: Policy): Scope {
  const skip = (why: string): Scope => ({ kind: 'skip', why });
  const kind = request.kind;
  if (kind && (kind.kind !== 'Pod' || (kind.group ?? '') !== ''))
    return skip(`kind ${kind.group ? `${kind.group}/` : ''}${kind.kind} is not a Pod`);
  if (!policy.namespaces.has(request.namespace ?? ''))
    return skip(`namespace "${request.namespace ?? ''}" is not a build namespace`);
  const ephemeral = request.subResource === 'ephemeralcontainers' && request.operation === 'UPDATE';
  if (request.subResource && !ephemeral) return skip(`subresource ${request.subResource}`);
  if (!ephemeral && request.operation !== 'CREATE')
    return skip(`operation ${request.operation ?? '(none)'} is not CREATE`);
  if (request.object === null || typeof request.object !== 'object')
    return skip('the request carries no object');
  if (ephemeral) return { kind: 'ephemeral' };
  if (policy.isBuild(labelsOf(request.object))) return { kind: 'build' };
  const otherPods = policy.config.otherPods;
  if (otherPods === 'allow') return skip('labels do not match podSelector (otherPods: allow)');
  if (otherPods === 'deny')
    return {
      kind: 'deny',
      why: `kata-admission refuses this pod: its labels do not match podSelector in build namespace "${request.namespace}" (otherPods: deny)`,
    };
  return { kind: 'other', why: 'labels do not match podSelector: routed like a build (otherPods: route)' };
}
