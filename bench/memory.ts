// Memory over a long run of admissions through the shared review path, in this process.
import { reviewAdmission } from '../src/admission/review.js';
import { defaultPolicy } from '../src/policy/load.js';
import { reviewText } from './pods.js';

export interface MemoryResult {
  admissions: number;
  warmRssBytes: number;
  warmHeapBytes: number;
  finalRssBytes: number;
  finalHeapBytes: number;
}

function settle() {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage();
}

export async function benchMemory(admissions = 1_000_000): Promise<MemoryResult> {
  const policy = defaultPolicy();
  const base = JSON.parse(reviewText(0));
  const pod = base.request.object;
  const run = async (count: number, offset: number) => {
    for (let i = 0; i < count; i++) {
      // A different job and uid each time, as in production: nothing should accumulate per key.
      const labels = { ...pod.metadata.labels, 'screwdriver.cd/job': `job-${offset + i}` };
      const review = {
        ...base,
        request: {
          ...base.request,
          uid: `uid-${offset + i}`,
          object: { ...pod, metadata: { ...pod.metadata, labels } },
        },
      };
      const outcome = await reviewAdmission(review, { policy });
      if (!outcome.ok) throw new Error(outcome.error);
    }
  };
  await run(20_000, 0);
  const warm = settle();
  await run(admissions, 20_000);
  const final = settle();
  return {
    admissions,
    warmRssBytes: warm.rss,
    warmHeapBytes: warm.heapUsed,
    finalRssBytes: final.rss,
    finalHeapBytes: final.heapUsed,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(await benchMemory(Number(process.argv[2] ?? 1_000_000))));
}
