// Image inspection: what a cached verdict adds to an admission, and what a cold lookup costs on
// loopback against a real registry (Debian's docker-registry), with its round trips.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reviewAdmission } from '../src/admission/review.js';
import { parseConfig } from '../src/policy/load.js';
import { createInspector } from '../src/images/inspector.js';
import { seedImages, startRegistry } from '../test/registry/registry.js';
import { reviewText } from './pods.js';

export interface ImageBench {
  withoutInspectionNs: number;
  cachedNs: number;
  cachedAddedNs: number;
  cold: { image: string; ms: number; registryRequests: number }[];
}

async function timeAsync(fn: () => Promise<unknown>, iterations: number, rounds = 7): Promise<number> {
  for (let i = 0; i < 2000; i++) await fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await fn();
    samples.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  return samples.sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
}

export async function benchImages(): Promise<ImageBench> {
  const storage = join(mkdtempSync(join(tmpdir(), 'kata-admission-bench-registry-')), 'storage');
  await seedImages(storage);
  const registry = await startRegistry(storage);
  try {
    const result = parseConfig(
      `imageInspection: {enabled: true, registries: {"${registry.host}": {insecure: true}}}`,
    );
    if (!result.ok) throw new Error(result.problems.join('; '));
    const policy = result.policy;
    const review = JSON.parse(reviewText(0));
    // Every image of the pod from the local registry, so nothing waits on an unreachable one.
    const spec = review.request.object.spec;
    for (const c of [...spec.containers, ...spec.initContainers])
      c.image = `${registry.host}/ci/${c.name === 'dind' ? 'amd64' : 'multi'}:v1`;

    const cold: ImageBench['cold'] = [];
    for (const name of ['amd64', 'multi', 'i386', 'legacybase']) {
      const inspector = createInspector(policy.config.imageInspection);
      const before = registry.requests.length;
      const start = performance.now();
      await inspector.inspect([`${registry.host}/ci/${name}:v1`]);
      cold.push({
        image: `ci/${name}:v1`,
        ms: performance.now() - start,
        registryRequests: registry.requests.length - before,
      });
    }

    const inspector = createInspector(policy.config.imageInspection);
    await inspector.inspect(
      [...spec.containers, ...spec.initContainers].map((c: { image: string }) => c.image),
    ); // warm the cache
    const inspectImages = (images: string[]) => inspector.inspect(images);
    const withoutInspectionNs = await timeAsync(() => reviewAdmission(review, { policy }), 20_000);
    const cachedNs = await timeAsync(() => reviewAdmission(review, { policy, inspectImages }), 20_000);
    return { withoutInspectionNs, cachedNs, cachedAddedNs: cachedNs - withoutInspectionNs, cold };
  } finally {
    await registry.stop();
  }
}
