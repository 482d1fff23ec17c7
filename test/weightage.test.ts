// Gradual rollout: a stable bucket per job, so raising weightage only ever moves builds to kata.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bucketOf } from '../src/policy/bucket.js';
import { ANNOTATION, admit, fixture, policyFrom, withPod } from './helpers.js';

function buildOf(pipeline: string, job: string, buildId: number) {
  return withPod(fixture('build-plain'), (pod) => {
    pod.metadata!.name = `beta-${buildId}-abcde`;
    Object.assign(pod.metadata!.labels!, {
      sdbuild: `beta-${buildId}`,
      'screwdriver.cd/pipeline': pipeline,
      'screwdriver.cd/job': job,
    });
  });
}

async function routeOf(review: ReturnType<typeof buildOf>, weightage: number) {
  const { pod } = await admit(review, policyFrom(`weightage: ${weightage}`));
  return pod.metadata!.annotations![ANNOTATION('route')];
}

describe('weightage', () => {
  it('buckets by SHA-256, as documented, so other tools can compute it', () => {
    // Expected values computed independently: int.from_bytes(sha256(key)[:4], 'big') % 100
    assert.equal(bucketOf('screwdriver-cd.kata-demo/publish'), 23);
    assert.equal(bucketOf('screwdriver-cd.kata-demo/main'), 18);
    assert.equal(bucketOf('beta-1001'), 81);
  });

  it('sends every build of a job the same way', async () => {
    for (const weightage of [10, 50, 90]) {
      for (let job = 0; job < 20; job++) {
        const routes = new Set<string | undefined>();
        for (let build = 0; build < 5; build++)
          routes.add(await routeOf(buildOf('org.repo', `job-${job}`, 1000 * job + build), weightage));
        assert.equal(
          routes.size,
          1,
          `job-${job} at weightage ${weightage} split across ${[...routes].join(', ')}`,
        );
      }
    }
  });

  it('only moves jobs from legacy to kata when weightage rises', async () => {
    const levels = [0, 10, 35, 60, 99, 100];
    for (let job = 0; job < 150; job++) {
      const review = buildOf(`pipeline-${job % 7}`, `job-${job}`, job);
      let wasKata = false;
      for (const weightage of levels) {
        const isKata = (await routeOf(review, weightage)) === 'kata';
        assert.ok(isKata || !wasKata, `job-${job} went back to legacy at weightage ${weightage}`);
        wasKata = isKata;
      }
      assert.ok(wasKata, 'weightage 100 sends everything to kata');
    }
  });

  it('routes about the configured share of jobs to kata', async () => {
    const policy = policyFrom('weightage: 30');
    let kata = 0;
    const jobs = 3000;
    for (let job = 0; job < jobs; job++) {
      const { pod } = await admit(buildOf(`pipeline-${job % 40}`, `job-${job}`, job), policy);
      if (pod.metadata!.annotations![ANNOTATION('route')] === 'kata') kata++;
      assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'weightage');
    }
    const share = kata / jobs;
    assert.ok(Math.abs(share - 0.3) < 0.03, `share ${share} is not within 3 points of 30%`);
  });

  it('falls back to sdbuild, then the pod name, for the rollout key', async () => {
    const review = withPod(fixture('build-plain'), (pod) => {
      delete pod.metadata!.labels!['screwdriver.cd/job'];
    });
    const { outcome } = await admit(review, policyFrom('weightage: 50'));
    assert.equal(outcome.summary.decision!.rolloutKey, 'beta-1001');
    assert.equal(outcome.summary.decision!.bucket, 81);

    const noSdbuild = withPod(review, (pod) => {
      delete pod.metadata!.labels!.sdbuild;
    });
    const { outcome: byName } = await admit(noSdbuild, policyFrom('weightage: 50'));
    assert.equal(byName.summary.decision!.rolloutKey, review.request.object.metadata!.name);
  });
});
