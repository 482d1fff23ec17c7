// Benchmark inputs: a realistic executor pod, and the same pod grown to N containers.
import { readFileSync } from 'node:fs';

const FIXTURE = new URL('../test/fixtures/build-dind.json', import.meta.url);

/** The executor-k8s review (build, dind sidecar, launcher init container), with `containers` containers. */
export function reviewText(containers = 0): string {
  const review = JSON.parse(readFileSync(FIXTURE, 'utf8'));
  const pod = review.request.object;
  const template = pod.spec.containers[0];
  for (let i = pod.spec.containers.length; i < containers; i++) {
    pod.spec.containers.push({
      ...structuredClone(template),
      name: `step-${i}`,
      env: [
        ...template.env,
        ...Array.from({ length: 20 }, (_, j) => ({
          name: `VAR_${j}`,
          value: `value-${i}-${j}-${'x'.repeat(40)}`,
        })),
      ],
    });
  }
  return JSON.stringify(review);
}
