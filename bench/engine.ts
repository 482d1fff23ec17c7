// Engine cost per admission, against JSON.parse of the same review measured in the same run.
import { decide } from '../src/policy/decide.js';
import { mutate } from '../src/policy/mutate.js';
import { reviewAdmission } from '../src/admission/review.js';
import { defaultPolicy } from '../src/config/load.js';
import fastJsonPatch from 'fast-json-patch';
import { reviewText } from './pods.js';

/** Median ns per call over several rounds of `iterations` calls. */
export function timeIt(fn: () => unknown, iterations: number, rounds = 7): number {
  for (let i = 0; i < Math.min(iterations, 2000); i++) fn(); // warm up, let the JIT settle
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    samples.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

export interface EngineResult {
  pod: string;
  bytes: number;
  jsonParseNs: number;
  engineNs: number;
  reviewNs: number;
  engineRatio: number;
  reviewRatio: number;
}

export async function benchEngine(): Promise<EngineResult[]> {
  const policy = defaultPolicy();
  const results: EngineResult[] = [];
  for (const [label, containers, iterations] of [['realistic executor pod', 0, 20_000], ['20 containers', 20, 2000], ['200 containers', 200, 200]] as const) {
    const text = reviewText(containers);
    const review = JSON.parse(text);
    const pod = review.request.object;
    const jsonParseNs = timeIt(() => JSON.parse(text), iterations);
    // The engine never writes to the submitted pod (copy-on-write), so one parsed copy serves every call.
    const engineNs = timeIt(() => fastJsonPatch.compare(pod, mutate(pod, decide(pod, policy), policy).pod), iterations);
    // The whole shared path after JSON.parse: decode, select, check, decide, mutate, diff, respond.
    const reviewNs = timeIt(() => reviewAdmission(review, { policy }), iterations);
    results.push({ pod: label, bytes: text.length, jsonParseNs, engineNs, reviewNs, engineRatio: engineNs / jsonParseNs, reviewRatio: reviewNs / jsonParseNs });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchEngine()) console.log(r);
}
