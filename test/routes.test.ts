// Routes as data: the remedy configs (examples/remedy.yaml: kata, kata with vsyscall=emulate,
// kata-ia32 and legacy; and a three-route variant that never uses legacy), asserted on the pod you
// get by applying the patch; and the config errors that keep a route name from dangling.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { reviewAdmission } from '../src/admission/review.js';
import { parseConfig } from '../src/policy/load.js';
import { decide, type ImageFacts } from '../src/policy/decide.js';
import { mutate } from '../src/policy/mutate/index.js';
import {
  ANNOTATION,
  admit,
  fixture,
  patchOf,
  patchedPod,
  policyFrom,
  withPod,
  type Review,
} from './helpers.js';

const REMEDY = readFileSync(new URL('../examples/remedy.yaml', import.meta.url), 'utf8');
const KERNEL_PARAMS = 'io.katacontainers.config.hypervisor.kernel_params';
// Three routes in use: nothing is sent to legacy, builds outside the rollout stay on kata.
const THREE_ROUTES = `${REMEDY.replace("  - 'nested-kvm'\n", '')}\nweightage: 50\n`.replace(
  'fallbackRoute: legacy',
  'fallbackRoute: kata-vsyscall',
);

const image = (name: string) => (p: V1Pod) => {
  p.spec!.containers[0]!.image = name;
};

/** Reviews with image facts as registry inspection would give them (the registry itself is tested in images.test.ts). */
async function admitWithFacts(review: Review, yaml: string, facts: ImageFacts) {
  const policy = policyFrom(yaml);
  const outcome = await reviewAdmission(structuredClone(review), {
    policy,
    inspectImages: async () => facts,
  });
  assert.ok(outcome.ok);
  return { outcome, pod: patchedPod(review.request.object, outcome) };
}

describe('the four-route remedy config', () => {
  const policy = policyFrom(REMEDY);

  it('sends an EL6 image to kata with vsyscall=emulate, on the kata pool', async () => {
    const { pod } = await admit(withPod(fixture('build-plain'), image('centos:6.10')), policy);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata-vsyscall');
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'excluded-image');
    assert.equal(pod.metadata!.annotations![KERNEL_PARAMS], 'vsyscall=emulate');
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.deepEqual(pod.spec!.nodeSelector, { dedicated: 'screwdriver-kata' });
  });

  it('sends a 32-bit image, by exclusion or by its class, to kata-ia32 on its own pool', async () => {
    const byName = await admit(withPod(fixture('build-plain'), image('i386/debian:12')), policy);
    assert.equal(byName.pod.metadata!.annotations![ANNOTATION('route')], 'kata-ia32');
    assert.equal(byName.pod.spec!.runtimeClassName, 'kata-ia32');
    assert.deepEqual(byName.pod.spec!.nodeSelector, { dedicated: 'screwdriver-kata-ia32' });
    assert.ok(byName.pod.spec!.tolerations!.some((t) => t.value === 'screwdriver-kata-ia32'));
    assert.ok(
      !byName.pod.spec!.tolerations!.some((t) => t.value === 'screwdriver-kata' || t.value === 'screwdriver'),
    );
    const review = fixture('build-plain');
    const byClass = await admitWithFacts(
      review,
      REMEDY,
      new Map([
        [review.request.object.spec!.containers[0]!.image!, { class: '32-bit', detail: 'only linux/386' }],
      ]),
    );
    assert.equal(byClass.pod.metadata!.annotations![ANNOTATION('route')], 'kata-ia32');
    assert.equal(byClass.pod.metadata!.annotations![ANNOTATION('reason')], 'image-arch');
    assert.match(byClass.pod.metadata!.annotations![ANNOTATION('detail')]!, /class 32-bit goes to kata-ia32/);
  });

  it('sends a legacy-glibc class to kata-vsyscall, and only what nothing else runs to legacy', async () => {
    const review = fixture('build-plain');
    const glibc = await admitWithFacts(
      review,
      REMEDY,
      new Map([
        [
          review.request.object.spec!.containers[0]!.image!,
          { class: 'legacy-glibc', detail: 'centos-release-6' },
        ],
      ]),
    );
    assert.equal(glibc.pod.metadata!.annotations![ANNOTATION('route')], 'kata-vsyscall');
    const { pod } = await admit(withPod(fixture('build-plain'), image('ci/nested-kvm:1')), policy);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.spec!.runtimeClassName, undefined);
    assert.deepEqual(pod.spec!.nodeSelector, { dedicated: 'screwdriver' });
    assert.equal(pod.metadata!.annotations![KERNEL_PARAMS], undefined);
  });

  it('pins to any route, and splits the rollout between the default and the fallback route', async () => {
    const pinned = policyFrom(
      `${REMEDY}\npins: [{selector: {matchLabels: {screwdriver.cd/job: main}}, route: kata-ia32, reason: multilib}]\n`,
    );
    const { pod } = await admit(fixture('build-plain'), pinned);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata-ia32');
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'pin');
    for (const [weightage, route] of [
      [0, 'legacy'],
      [100, 'kata'],
    ] as const) {
      const rollout = await admit(fixture('build-plain'), policyFrom(`${REMEDY}\nweightage: ${weightage}\n`));
      assert.equal(rollout.pod.metadata!.annotations![ANNOTATION('route')], route);
    }
  });

  it("writes the route's Kata annotations exactly and removes every submitted one, on every route", async () => {
    const submitted = {
      [KERNEL_PARAMS]: 'init=/bin/sh agent.debug_console vsyscall=none',
      'io.katacontainers.config.hypervisor.default_memory': '200000',
      'io.katacontainers.config.runtime.disable_guest_seccomp': 'true',
      'io.katacontainers.config_path': '/tmp/evil.toml',
    };
    for (const [change, route, kernel] of [
      [image('centos:6'), 'kata-vsyscall', 'vsyscall=emulate'],
      [(_: V1Pod) => {}, 'kata', undefined],
      [image('i386/alpine:3'), 'kata-ia32', undefined],
    ] as const) {
      const { pod, outcome } = await admit(
        withPod(fixture('build-plain'), (p) => {
          change(p);
          p.metadata!.annotations = { ...submitted };
        }),
        policy,
      );
      assert.equal(pod.metadata!.annotations![ANNOTATION('route')], route);
      const kata = Object.entries(pod.metadata!.annotations!).filter(([k]) =>
        k.startsWith('io.katacontainers.'),
      );
      assert.deepEqual(kata, kernel ? [[KERNEL_PARAMS, kernel]] : [], route);
      for (const key of Object.keys(submitted))
        assert.ok(
          outcome.summary.warnings.some((w) => w.includes(key) && w.includes('removed')),
          `a warning names ${key}: ${outcome.summary.warnings.join(' | ')}`,
        );
    }
  });

  for (const [name, yaml] of [
    ['four routes', REMEDY],
    ['three routes', THREE_ROUTES],
  ]) {
    for (const fixtureName of ['build-plain', 'build-dind', 'build-rhel6', 'build-buildkit']) {
      for (const change of [(_: V1Pod) => {}, image('centos:6'), image('i386/alpine:3')]) {
        it(`${name}, ${fixtureName}: the patch applies exactly, and reinvocation gives an empty patch`, async () => {
          const p = policyFrom(yaml);
          const review = withPod(fixture(fixtureName), change);
          const { outcome, pod } = await admit(review, p);
          const raw = review.request.object;
          assert.deepEqual(pod, JSON.parse(JSON.stringify(mutate(raw, decide(raw, p), p).pod)));
          const again = await admit({ ...review, request: { ...review.request, object: pod } }, p);
          assert.deepEqual(patchOf(again.outcome), []);
          assert.equal(again.outcome.summary.decision!.route, outcome.summary.decision!.route);
        });
      }
    }
  }

  it('the three-route config keeps builds outside the rollout in a VM', async () => {
    const p = policyFrom(`${THREE_ROUTES.replace('weightage: 50', 'weightage: 0')}`);
    const { pod } = await admit(fixture('build-plain'), p);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata-vsyscall');
    assert.equal(pod.spec!.runtimeClassName, 'kata');
  });
});

describe('route names in the config', () => {
  const problems = (yaml: string) => {
    const result = parseConfig(yaml);
    assert.equal(result.ok, false, yaml);
    return result.ok ? '' : result.problems.join('\n');
  };
  const cases: [string, string, RegExp][] = [
    [
      'a pin to an unknown route',
      'pins: [{selector: {}, route: lgacy}]',
      /^pins\.0\.route: no route "lgacy" \(did you mean "legacy"\?\); routes are kata, legacy/m,
    ],
    [
      'an exclusion to an unknown route',
      'exclusions: [{pattern: x, route: vm}]',
      /^exclusions\.0\.route: no route "vm"/m,
    ],
    ['an unknown default route', 'defaultRoute: kata-ia32', /^defaultRoute: no route "kata-ia32"/m],
    [
      'a class to an unknown route',
      'imageInspection: {classRoutes: {32-bit: ia32}}',
      /^imageInspection\.classRoutes\.32-bit: no route "ia32"/m,
    ],
    [
      'a new route without its runtime class',
      'routes: {kata-ia32: {nodeSelector: {pool: ia32}}}',
      /^routes\.kata-ia32\.runtimeClassName: give the runtimeClassName of a new route/m,
    ],
    [
      'a route name that is not a DNS label',
      'routes: {Kata_IA32: {runtimeClassName: null}}',
      /^routes\.Kata_IA32: "Kata_IA32" is not a valid route name/m,
    ],
    [
      'an unknown Kata annotation',
      'routes: {kata: {annotations: {io.katacontainers.config.hypervisor.kernel_param: x}}}',
      /is not a Kata per-pod annotation \(did you mean "io\.katacontainers\.config\.hypervisor\.kernel_params"\?\)/,
    ],
    [
      'two routes sharing a RuntimeClass on different pools',
      'routes: {kata-vs: {runtimeClassName: kata, nodeSelector: {pool: vs}}}',
      /^routes\.kata-vs\.nodeSelector: route kata-vs shares RuntimeClass "kata" with route kata/m,
    ],
    [
      'two routes sharing a RuntimeClass with different overheads',
      'routes: {kata-vs: {runtimeClassName: kata, nodeSelector: {dedicated: screwdriver-kata}, runtimeClassOverhead: {cpu: 1, memory: 1Gi}}}',
      /^routes\.kata-vs\.runtimeClassOverhead: route kata-vs shares RuntimeClass "kata" with route kata/m,
    ],
    [
      'an overhead that is not a quantity',
      'routes: {kata: {runtimeClassOverhead: {cpu: 250m, memory: lots}}}',
      /^routes\.kata\.runtimeClassOverhead\.memory: .*quantity/m,
    ],
  ];
  for (const [what, yaml, pattern] of cases) it(`names ${what}`, () => assert.match(problems(yaml), pattern));

  it('warns, for each Kata annotation, that the node and containerd must let it through', () => {
    const notes = policyFrom(REMEDY).notes;
    assert.equal(notes.length, 1);
    assert.match(
      notes[0]!,
      /route kata-vsyscall sets io\.katacontainers\.config\.hypervisor\.kernel_params: .*enable_annotations \(kernel_params\).*pod_annotations/,
    );
  });
});
