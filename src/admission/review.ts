// The one admission path, shared by the HTTPS server and the `review`/`explain` commands:
// decode -> select -> decide -> mutate -> diff -> respond.
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { decide, NO_IMAGE_FACTS, type Decision, type ImageFacts } from '../policy/decide.js';
import { mutate } from '../policy/mutate.js';
import { buildPodProblem, labelsOf, podImages, type Pod } from '../policy/pod.js';
import type { Policy } from '../policy/policy.js';
import { decodeAdmissionReview, type AdmissionRequest } from './decode.js';
import { admissionReview, allowed, denied, patched, type AdmissionReviewResponse } from './respond.js';

export interface ReviewDeps {
  policy: Policy;
  /** Registry facts for these images (rule 3); absent when inspection is off. */
  inspectImages?: (images: string[]) => Promise<ImageFacts>;
}

/** The review's dependencies for a policy, with image inspection when an inspector is given. */
export function reviewDepsFor(policy: Policy, inspector?: { inspect(images: string[]): Promise<ImageFacts> }): ReviewDeps {
  return inspector ? { policy, inspectImages: (images) => inspector.inspect(images) } : { policy };
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

export type ReviewOutcome =
  | { ok: true; review: AdmissionReviewResponse; summary: ReviewSummary }
  | { ok: false; error: string };

export async function reviewAdmission(body: unknown, deps: ReviewDeps): Promise<ReviewOutcome> {
  const decoded = decodeAdmissionReview(body);
  if (!decoded.ok) return decoded;
  const { apiVersion, request } = decoded.review;
  const { policy } = deps;
  const object = request.object as Pod | undefined;
  const summary: ReviewSummary = {
    uid: request.uid,
    namespace: request.namespace ?? '',
    name: request.name || object?.metadata?.name || object?.metadata?.generateName || '',
    operation: request.operation ?? '',
    dryRun: request.dryRun === true,
    patch: [],
    warnings: [],
    configHash: policy.hash,
  };
  const answer = (body: Parameters<typeof admissionReview>[2]): ReviewOutcome => ({ ok: true, review: admissionReview(apiVersion, request.uid, body), summary });

  const skipped = whyNotABuild(request, policy);
  if (skipped) {
    summary.skipped = skipped;
    return answer(allowed());
  }
  // From here on this is a build pod: if it cannot be routed, it is refused, never let through unrouted.
  const problem = buildPodProblem(object);
  if (problem) {
    summary.denied = `kata-admission cannot route this build pod: ${problem}`;
    return answer(denied(400, summary.denied));
  }
  const pod = object!;
  try {
    const facts = deps.inspectImages ? await deps.inspectImages(podImages(pod)) : NO_IMAGE_FACTS;
    if (deps.inspectImages) summary.images = facts;
    const decision = decide(pod, policy, facts);
    const mutation = mutate(pod, decision, policy);
    summary.decision = decision;
    summary.warnings = mutation.warnings;
    summary.patch = fastJsonPatch.compare(pod, mutation.pod);
    return answer(patched(summary.patch, mutation.warnings, { route: decision.route, reason: `${decision.rule}: ${decision.detail}` }));
  } catch (error) {
    summary.denied = `kata-admission failed to route this build pod: ${(error as Error).message}`;
    return answer(denied(500, summary.denied));
  }
}

function whyNotABuild(request: AdmissionRequest, policy: Policy): string | undefined {
  const kind = request.kind;
  if (kind && (kind.kind !== 'Pod' || (kind.group ?? '') !== '')) return `kind ${kind.group ? `${kind.group}/` : ''}${kind.kind} is not a Pod`;
  if (request.subResource) return `subresource ${request.subResource}`;
  if (request.operation !== 'CREATE') return `operation ${request.operation ?? '(none)'} is not CREATE`;
  if (!policy.namespaces.has(request.namespace ?? '')) return `namespace "${request.namespace ?? ''}" is not a build namespace`;
  if (request.object === null || typeof request.object !== 'object') return 'the request carries no object';
  if (!policy.isBuild(labelsOf(request.object))) return 'labels do not match podSelector';
  return undefined;
}
