// Engine cost per admission, against JSON.parse of the same review measured in the same run.
import { decide } from '../src/policy/decide.js';
import { mutate } from '../src/policy/mutate/index.js';
import { reviewAdmission } from '../src/admission/review.js';
import { defaultPolicy } from '../src/policy/load.js';
import fastJsonPatch from 'fast-json-patch';
import { reviewText } from './pods.js';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** An async subject is awaited: the review path's work after its first `await` runs in a microtask. */
async function nsPerCall(fn: () => unknown, iterations: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const result = fn();
    if (result instanceof Promise) await result;
  }
  return Number(process.hrtime.bigint() - start) / iterations;
}

/**
 * Baseline and subjects timed in alternating rounds, so a noisy neighbour hits all of them alike;
 * each figure is a median, each ratio the median of the per-round ratios.
 */
export async function timeAgainst(
  baseline: () => unknown,
  subjects: (() => unknown)[],
  iterations: number,
  rounds = 9,
) {
  for (const fn of [baseline, ...subjects]) await nsPerCall(fn, Math.min(iterations, 2000)); // let the JIT settle
  const base: number[] = [];
  const times: number[][] = subjects.map(() => []);
  for (let r = 0; r < rounds; r++) {
    base.push(await nsPerCall(baseline, iterations));
    for (const [i, fn] of subjects.entries()) times[i]!.push(await nsPerCall(fn, iterations));
  }
  return {
    baselineNs: median(base),
    subjects: times.map((t) => ({ ns: median(t), ratio: median(t.map((v, r) => v / base[r]!)) })),
  };
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
  for (const [label, containers, iterations] of [
    ['realistic executor pod', 0, 5000],
    ['20 containers', 20, 500],
    ['200 containers', 200, 50],
  ] as const) {
    const text = reviewText(containers);
    const review = JSON.parse(text);
    const pod = review.request.object;
    const {
      baselineNs,
      subjects: [engine, whole],
    } = await timeAgainst(
      () => JSON.parse(text),
      [
        // The engine never writes to the submitted pod (copy-on-write), so one parsed copy serves every call.
        () => fastJsonPatch.compare(pod, mutate(pod, decide(pod, policy), policy).pod),
        // The whole shared path after JSON.parse: decode, select, check, decide, mutate, diff, respond.
        () => reviewAdmission(review, { policy }),
      ],
      iterations,
    );
    results.push({
      pod: label,
      bytes: text.length,
      jsonParseNs: baselineNs,
      engineNs: engine!.ns,
      reviewNs: whole!.ns,
      engineRatio: engine!.ratio,
      reviewRatio: whole!.ratio,
    });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchEngine()) console.log(r);
}
