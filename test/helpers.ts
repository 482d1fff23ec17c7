// Shared test helpers: fixtures, policies, and the pod you get by applying a response's patch.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { reviewAdmission, type ReviewOutcome } from '../src/admission/review.js';
import { parseConfig } from '../src/policy/load.js';
import type { Pod } from '../src/kube/pod.js';
import type { Policy } from '../src/policy/policy.js';

export const FIXTURES = new URL('./fixtures/', import.meta.url);

export interface Review {
  apiVersion: string;
  kind: string;
  request: {
    uid: string;
    namespace?: string;
    operation?: string;
    dryRun?: boolean;
    object: Pod;
    [key: string]: unknown;
  };
}

export function fixture(name: string): Review {
  return JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as Review;
}

export function policyFrom(yaml = '{}'): Policy {
  const result = parseConfig(yaml);
  if (!result.ok) assert.fail(`config should be valid: ${result.problems.join('; ')}`);
  return result.policy;
}

// One compiled default policy: its memory key is its own, so a reinvocation must see the same one.
let defaultPolicy: Policy | undefined;

export async function answer(
  body: unknown,
  policy: Policy = (defaultPolicy ??= policyFrom()),
): Promise<Extract<ReviewOutcome, { ok: true }>> {
  const outcome = await reviewAdmission(body, { policy });
  if (!outcome.ok) assert.fail(`review should be answered: ${outcome.error}`);
  return outcome;
}

export function patchOf(outcome: Extract<ReviewOutcome, { ok: true }>): Operation[] {
  return patchIn(outcome.review.response);
}

/** The JSON patch a response AdmissionReview carries (none: no change). */
function patchIn(response: { patch?: string; patchType?: string }): Operation[] {
  const { patch, patchType } = response;
  if (patch === undefined) return [];
  assert.equal(patchType, 'JSONPatch');
  return JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as Operation[];
}

/** The pod the API server would store: the submitted pod with the response's patch applied. */
export function patchedPod(submitted: unknown, outcome: Extract<ReviewOutcome, { ok: true }>): Pod {
  return podFromResponse(submitted, outcome.review);
}

/** The same, from a response AdmissionReview as the server or the CLI printed it. */
export function podFromResponse(
  submitted: unknown,
  review: { response: { patch?: string; patchType?: string } },
): Pod {
  const copy = structuredClone(submitted);
  return fastJsonPatch.applyPatch(copy, patchIn(review.response), true, true).newDocument as Pod;
}

/** Reviews `body` and returns the stored pod, plus the outcome for assertions on the response. */
export async function admit(body: Review, policy?: Policy) {
  const outcome = await answer(body, policy);
  return { outcome, pod: patchedPod(body.request.object, outcome), response: outcome.review.response };
}

export function withPod(review: Review, change: (pod: Pod) => void): Review {
  const copy = structuredClone(review);
  change(copy.request.object);
  return copy;
}

export const ANNOTATION = (key: string) => `kata-admission.screwdriver.cd/${key}`;

/** An Io for the CLI's run() that keeps what it prints. */
export function capturedIo() {
  const out: string[] = [];
  const err: string[] = [];
  const io = {
    stdin: Readable.from([]),
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    env: {},
    onShutdownSignal: () => {},
  } as never;
  return { io, out, err };
}
