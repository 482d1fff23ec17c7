// Where the review path's time goes: each stage of one admission of the executor pod timed alone,
// next to JSON.parse of the same review (the stages overlap: the whole path is measured as well).
import fastJsonPatch from 'fast-json-patch';
import { decodeAdmissionReview } from '../src/admission/decode.js';
import { reviewAdmission } from '../src/admission/review.js';
import { buildPodProblem } from '../src/kube/pod.js';
import { decide, NO_IMAGE_FACTS } from '../src/policy/decide.js';
import { violations } from '../src/policy/invariants.js';
import { defaultPolicy } from '../src/policy/load.js';
import { mutate } from '../src/policy/mutate/index.js';
import { timeAgainst } from './engine.js';
import { reviewText } from './pods.js';

export interface Stage {
  stage: string;
  ns: number;
  ratio: number;
}

export async function benchStages(iterations = 5000): Promise<{ jsonParseNs: number; stages: Stage[] }> {
  const policy = defaultPolicy();
  const text = reviewText(0);
  const review = JSON.parse(text);
  const pod = review.request.object;
  const decision = decide(pod, policy, NO_IMAGE_FACTS);
  const mutated = mutate(pod, decision, policy).pod;
  const route = policy.route(decision.route);
  const patch = fastJsonPatch.compare(pod, mutated);
  const response = (await reviewAdmission(review, { policy })) as { review: unknown };
  const subjects: [string, () => unknown][] = [
    ['decode the AdmissionReview', () => decodeAdmissionReview(review)],
    ['check the pod can be routed', () => buildPodProblem(pod)],
    ['decide', () => decide(pod, policy, NO_IMAGE_FACTS)],
    ['mutate (steps, annotations, sealed memory)', () => mutate(pod, decision, policy)],
    ['invariants on the mutated pod', () => violations(mutated, route, policy, 'CREATE')],
    ['diff (fast-json-patch compare)', () => fastJsonPatch.compare(pod, mutated)],
    ['patch to JSON and base64', () => Buffer.from(JSON.stringify(patch)).toString('base64')],
    ['response to JSON', () => JSON.stringify(response.review)],
    ['the whole review path (awaited)', () => reviewAdmission(review, { policy })],
  ];
  const { baselineNs, subjects: timed } = await timeAgainst(
    () => JSON.parse(text),
    subjects.map(([, fn]) => fn),
    iterations,
  );
  return {
    jsonParseNs: baselineNs,
    stages: subjects.map(([stage], i) => ({ stage, ns: timed[i]!.ns, ratio: timed[i]!.ratio })),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await benchStages());
