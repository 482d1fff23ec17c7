// Properties over generated executor-shaped pods and configs (fast-check).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { reviewAdmission } from '../src/admission/review.js';
import type { Pod } from '../src/kube/pod.js';
import { answer, fixture, patchOf, patchedPod, policyFrom, type Review } from './helpers.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 3000);

const BASES = ['build-plain', 'build-dind', 'build-rhel6', 'build-buildkit'].map(fixture);
const UNKNOWN = 'x-unknown~field/with:odd keys';

const value = fc.constantFrom('screwdriver', 'screwdriver-kata', 'kata', 'legacy', 'z1', '5');
const key = fc.constantFrom('dedicated', 'pool', 'zone', 'kubernetes.io/arch');
const expression = fc
  .record({
    key,
    operator: fc.constantFrom('In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'),
    values: fc.array(value, { minLength: 1, maxLength: 3 }),
  })
  .map((e) =>
    e.operator === 'Exists' || e.operator === 'DoesNotExist' ? { key: e.key, operator: e.operator } : e,
  );
const toleration = fc.record(
  {
    key: fc.option(key, { nil: undefined }),
    operator: fc.constantFrom('Equal', 'Exists', undefined),
    value: fc.option(value, { nil: undefined }),
    effect: fc.constantFrom('NoSchedule', 'NoExecute', undefined),
  },
  { requiredKeys: [] },
);
const unknownField = fc.dictionary(
  fc.string({ unit: fc.constantFrom('a', '~', '/', '0', '1', 'é'), minLength: 1, maxLength: 4 }),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 2 },
);

const pod = fc
  .record({
    base: fc.constantFrom(...BASES),
    nodeSelector: fc.option(fc.dictionary(key, value, { maxKeys: 3 }), { nil: undefined }),
    tolerations: fc.option(fc.array(toleration, { maxLength: 4 }), { nil: undefined }),
    terms: fc.option(fc.array(fc.array(expression, { maxLength: 3 }), { minLength: 1, maxLength: 3 }), {
      nil: undefined,
    }),
    runtimeClassName: fc.constantFrom(undefined, 'kata', 'gvisor'),
    privileged: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
    image: fc.constantFrom(undefined, 'rhel6', 'x/RHEL6:1', 'centos:7', 'centos:6', 'i386/debian:12'),
    automount: fc.constantFrom(undefined, true, false),
    memoryLimit: fc.constantFrom(undefined, 'none', '64Mi', '512Mi', '0.25Gi', '4Gi'),
    tokenVolumeAt: fc.option(fc.nat(), { nil: undefined }),
    unknown: unknownField,
    job: fc.string({ unit: fc.constantFrom('a', 'b', 'c', '-', '1'), minLength: 1, maxLength: 8 }),
  })
  .map((g): Review => {
    const review = structuredClone(g.base);
    const p = review.request.object as Pod & Record<string, unknown>;
    const spec = p.spec! as NonNullable<Pod['spec']> & Record<string, unknown>;
    p.metadata!.labels!['screwdriver.cd/job'] = g.job;
    if (g.nodeSelector) spec.nodeSelector = g.nodeSelector;
    if (g.tolerations) spec.tolerations = g.tolerations;
    if (g.terms) {
      spec.affinity = {
        ...spec.affinity,
        nodeAffinity: {
          ...spec.affinity?.nodeAffinity,
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: g.terms.map((matchExpressions) =>
              matchExpressions.length
                ? { matchExpressions }
                : { matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] },
            ),
          },
        },
      };
    }
    if (g.runtimeClassName) spec.runtimeClassName = g.runtimeClassName;
    if (g.automount !== undefined) spec.automountServiceAccountToken = g.automount;
    if (g.image) spec.containers[0]!.image = g.image;
    if (g.memoryLimit === 'none') delete spec.containers[0]!.resources!.limits!.memory;
    else if (g.memoryLimit) spec.containers[0]!.resources!.limits!.memory = g.memoryLimit;
    if (g.tokenVolumeAt !== undefined) {
      // What the ServiceAccount plugin injects, at any position: removals from arrays must diff right.
      const volumes = spec.volumes ?? [];
      volumes.splice(g.tokenVolumeAt % (volumes.length + 1), 0, {
        name: 'kube-api-access-abcde',
        projected: { sources: [{ serviceAccountToken: { path: 'token' } }] },
      });
      spec.volumes = volumes;
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        const mounts = c.volumeMounts ?? [];
        mounts.splice(g.tokenVolumeAt % (mounts.length + 1), 0, {
          name: 'kube-api-access-abcde',
          mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
        });
        c.volumeMounts = mounts;
      }
    }
    const all = [...spec.containers, ...(spec.initContainers ?? [])];
    g.privileged.forEach((on, i) => {
      if (all[i]) all[i]!.securityContext = { ...all[i]!.securityContext, privileged: on };
    });
    // Unknown fields at several depths must come through untouched.
    p[UNKNOWN] = g.unknown;
    spec[UNKNOWN] = g.unknown;
    (spec.containers[0] as unknown as Record<string, unknown>)[UNKNOWN] = g.unknown;
    (p.metadata as Record<string, unknown>)[UNKNOWN] = g.unknown;
    return JSON.parse(JSON.stringify(review)) as Review; // what the API server sends is JSON: no undefined
  });

// Configs of 2 to 4 routes: kata and legacy always, and remedy routes for EL6 (kata with
// vsyscall=emulate) and 32-bit images (an IA32-kernel RuntimeClass), each on a pool of its own or kata's.
const configParams = fc.record({
  mode: fc.constantFrom('enforce', 'enforce', 'shadow'),
  // Both ends, one step in from each, and some middles: the bucket decides the rest.
  weightage: fc.constantFrom(0, 1, 23, 50, 77, 99, 100),
  kata: fc.constantFrom('{dedicated: screwdriver-kata}', '{dedicated: kata, zone: z1}', '{pool: kata}'),
  legacy: fc.constantFrom(
    '{}',
    '{dedicated: screwdriver}',
    '{pool: legacy}',
    '{dedicated: legacy, zone: z1}',
  ),
  vsyscall: fc.constantFrom(undefined, 'same', 'own'),
  ia32: fc.constantFrom(undefined, '{dedicated: ia32}', '{pool: ia32, zone: z1}'),
  taints: fc.boolean(),
  preferred: fc.constantFrom('{}', '{zone: z1}'),
  allowPrivileged: fc.boolean(),
});
type ConfigParams = typeof configParams extends fc.Arbitrary<infer T> ? T : never;

function configText(c: ConfigParams): string {
  const vsyscall =
    c.vsyscall === undefined
      ? ''
      : `
  kata-vsyscall: {runtimeClassName: ${c.vsyscall === 'same' ? `kata, nodeSelector: ${c.kata}` : 'kata-vs, nodeSelector: {pool: vsyscall}'}, tolerateNodeSelectorTaints: ${c.taints},
    annotations: {io.katacontainers.config.hypervisor.kernel_params: "vsyscall=emulate"}}`;
  const ia32 =
    c.ia32 === undefined
      ? ''
      : `
  kata-ia32: {runtimeClassName: kata-ia32, nodeSelector: ${c.ia32}}`;
  const exclusions = [
    `{pattern: rhel6, route: ${c.vsyscall ? 'kata-vsyscall' : 'legacy'}}`,
    `{pattern: i386, route: ${c.ia32 ? 'kata-ia32' : 'legacy'}}`,
    'centos:6',
  ];
  return `
mode: ${c.mode}
weightage: ${c.weightage}
exclusions: [${exclusions.join(', ')}]
routes:
  kata: {nodeSelector: ${c.kata}, tolerateNodeSelectorTaints: ${c.taints}, preferredNodeSelectors: ${c.preferred}, allowPrivileged: ${c.allowPrivileged}}
  legacy: {nodeSelector: ${c.legacy}, preferredNodeSelectors: ${c.preferred}}${vsyscall}${ia32}
`;
}

// Compiling a config costs more than reviewing a pod, so the properties draw from a pool of
// configs compiled once (a fixed sample of the space above; the pods are new every run).
const CONFIG_POOL = fc.sample(configParams, { numRuns: 400, seed: 20261201 }).map((params) => ({
  params,
  policy: policyFrom(configText(params)),
  // A counterexample names the config by its parameters, not by the compiled policy.
  [fc.toStringMethod]: () => JSON.stringify(params),
}));
const config = fc.constantFrom(...CONFIG_POOL.map((c) => c.policy));
const configWithParams = fc.constantFrom(...CONFIG_POOL);

/**
 * The reference router: the routing rules as docs/routing.md states them, written again for these
 * configs from their parameters (no config compiler, no rule engine), so it can disagree with the code.
 */
const model = {
  images: (p: Pod) =>
    (['containers', 'initContainers', 'ephemeralContainers'] as const).flatMap((kind) =>
      (p.spec![kind] ?? []).map((c) => c.image ?? ''),
    ),
  route(p: Pod, c: ConfigParams): string {
    const exclusions: [string, string][] = [
      ['rhel6', c.vsyscall ? 'kata-vsyscall' : 'legacy'],
      ['i386', c.ia32 ? 'kata-ia32' : 'legacy'],
      ['centos:6', 'legacy'],
    ];
    for (const image of model.images(p))
      for (const [pattern, route] of exclusions) if (image.toLowerCase().includes(pattern)) return route;
    if (c.weightage >= 100) return 'kata';
    const labels = p.metadata!.labels!;
    const key = `${labels['screwdriver.cd/pipeline']}/${labels['screwdriver.cd/job']}`;
    const bucket = createHash('sha256').update(key).digest().readUInt32BE(0) % 100;
    return bucket < c.weightage ? 'kata' : 'legacy';
  },
  runtimeClass(route: string, c: ConfigParams, submitted: string | undefined): string | null {
    const routes: Record<string, string | null> = {
      kata: 'kata',
      legacy: null,
      'kata-vsyscall': c.vsyscall === 'same' ? 'kata' : 'kata-vs',
      'kata-ia32': 'kata-ia32',
    };
    // A runtime class no route names is the submitter's own and stays on a route that names none.
    const ours = new Set(Object.values(routes));
    return routes[route] ?? (submitted && !ours.has(submitted) ? submitted : null);
  },
  nodeSelector(route: string, c: ConfigParams): Record<string, string> {
    const text = { kata: c.kata, legacy: c.legacy, 'kata-ia32': c.ia32 ?? '{}' }[route as 'kata'];
    const selector = route === 'kata-vsyscall' ? (c.vsyscall === 'same' ? c.kata : '{pool: vsyscall}') : text;
    return parseYaml(selector) as Record<string, string>;
  },
  /** A build container's memory limit: on a sandbox at least the default floor of 512Mi. */
  memoryLimit(route: string, submitted: string | undefined): string | undefined {
    const mebibytes: Record<string, number> = {
      '64Mi': 64,
      '512Mi': 512,
      '0.25Gi': 256,
      '2Gi': 2048,
      '4Gi': 4096,
    };
    if (route === 'legacy') return submitted;
    return submitted === undefined || mebibytes[submitted]! < 512 ? '512Mi' : submitted;
  },
  /** On a sandbox the route's list (or allowPrivileged) keeps privileged; without one, nothing does. */
  privileged(route: string, c: ConfigParams, kind: string, name: string, submitted: boolean): boolean {
    if (!submitted || route === 'legacy') return false;
    if (route === 'kata' && c.allowPrivileged) return true;
    return kind === 'containers' && (name === 'dind' || name === 'buildkitd');
  },
};

const TOKEN = 'kube-api-access-abcde';
/** The pod without what routing owns, so the rest can be compared whole with what was submitted. */
function unowned(p: Pod): unknown {
  const copy = structuredClone(p) as Pod;
  const spec = copy.spec!;
  delete copy.metadata!.annotations;
  for (const label of Object.keys(copy.metadata!.labels ?? {}))
    if (label.startsWith('kata-admission.screwdriver.cd/')) delete copy.metadata!.labels![label];
  for (const field of [
    'runtimeClassName',
    'nodeSelector',
    'tolerations',
    'automountServiceAccountToken',
    'overhead',
  ])
    delete (spec as unknown as Record<string, unknown>)[field];
  if (spec.affinity) delete spec.affinity.nodeAffinity;
  if (spec.affinity && Object.keys(spec.affinity).length === 0) delete spec.affinity;
  spec.volumes = spec.volumes?.filter((v) => v.name !== TOKEN);
  for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
    c.volumeMounts = c.volumeMounts?.filter((m) => m.name !== TOKEN);
    delete c.resources?.limits?.memory;
    if (c.securityContext) delete c.securityContext.privileged;
    delete c.terminationMessagePolicy;
  }
  return copy;
}

const admitsValue = (e: { operator: string; values?: string[] }, v: string) =>
  e.operator === 'In'
    ? e.values!.includes(v)
    : e.operator === 'NotIn'
      ? !e.values!.includes(v)
      : e.operator === 'Exists'
        ? true
        : e.operator === 'DoesNotExist'
          ? false
          : Number.isInteger(Number(v)) &&
            Number.isInteger(Number(e.values![0])) &&
            (e.operator === 'Gt' ? Number(v) > Number(e.values![0]) : Number(v) < Number(e.values![0]));

describe('properties', () => {
  it('stores what the reference router says, and changes nothing routing does not own', async () => {
    await fc.assert(
      fc.asyncProperty(pod, configWithParams, async (review, { params, policy }) => {
        const outcome = await answer(review, policy);
        assert.ok(outcome.review.response.allowed, outcome.review.response.status?.message);
        const submitted = review.request.object;
        const stored = patchedPod(submitted, outcome);
        const route = model.route(submitted, params);
        assert.equal(stored.metadata!.annotations!['kata-admission.screwdriver.cd/route'], route);
        if (params.mode === 'shadow') {
          assert.deepEqual(stored.spec, submitted.spec, 'shadow mode changes no spec');
          return;
        }
        assert.deepEqual(unowned(stored), unowned(submitted));
        const spec = stored.spec!;
        assert.equal(
          spec.runtimeClassName ?? null,
          model.runtimeClass(route, params, submitted.spec!.runtimeClassName),
        );
        for (const [k, v] of Object.entries(model.nodeSelector(route, params)))
          assert.equal(spec.nodeSelector?.[k], v, `route pair ${k}=${v}`);
        assert.equal(spec.automountServiceAccountToken, false);
        assert.ok(!spec.volumes?.some((v) => v.name === TOKEN), 'the token volume is gone');
        for (const c of [...spec.containers, ...(spec.initContainers ?? [])])
          assert.equal(c.terminationMessagePolicy, 'FallbackToLogsOnError', c.name);
        spec.containers.forEach((c, i) => {
          const before = submitted.spec!.containers[i]!.resources?.limits?.memory;
          assert.equal(
            c.resources?.limits?.memory,
            model.memoryLimit(route, before),
            `${c.name} memory limit`,
          );
        });
        for (const kind of ['containers', 'initContainers'] as const)
          (spec[kind] ?? []).forEach((c, i) => {
            const before = submitted.spec![kind]![i]!.securityContext?.privileged === true;
            assert.equal(
              c.securityContext?.privileged === true,
              model.privileged(route, params, kind, c.name, before),
              `${kind}[${i}] ${c.name} privileged`,
            );
          });
      }),
      { numRuns: RUNS },
    );
  });

  it('re-reviewing the mutated pod yields an empty patch and the same decision', async () => {
    await fc.assert(
      fc.asyncProperty(pod, config, async (review, policy) => {
        const first = await answer(review, policy);
        const again = {
          ...review,
          request: { ...review.request, object: patchedPod(review.request.object, first) },
        };
        const second = await answer(again, policy);
        assert.deepEqual(patchOf(second), []);
        assert.deepEqual(second.summary.decision, first.summary.decision);
      }),
      { numRuns: RUNS },
    );
  });

  // Another mutating webhook that touches none of the fields this one routes by placement, sorted
  // after this one (us, them, us again: reinvocation) or before it (them, us): the same stored pod.
  it('stores the same pod whatever the order of another mutating webhook', async () => {
    const otherWebhook = fc.oneof(
      fc.constantFrom('rhel6', 'centos:7', 'busybox:1').map((image) => (p: Pod) => {
        p.spec!.initContainers = [...(p.spec!.initContainers ?? []), { name: 'injected', image }];
      }),
      fc.constant((p: Pod) => {
        p.metadata!.labels = { ...p.metadata!.labels, injected: 'yes' };
      }),
      fc.constant((p: Pod) => {
        p.spec!.containers[0]!.env = [
          ...(p.spec!.containers[0]!.env ?? []),
          { name: 'INJECTED', value: '1' },
        ];
      }),
    );
    const withObject = (review: Review, object: Pod): Review => ({
      ...review,
      request: { ...review.request, object },
    });
    const applied = (change: (p: Pod) => void, p: Pod) => {
      const copy = structuredClone(p);
      change(copy);
      return copy;
    };
    await fc.assert(
      fc.asyncProperty(pod, config, otherWebhook, async (review, policy, them) => {
        const submitted = review.request.object;
        const afterUs = patchedPod(submitted, await answer(review, policy));
        const afterThem = applied(them, afterUs);
        const usThemUs = patchedPod(afterThem, await answer(withObject(review, afterThem), policy));
        const themFirst = applied(them, submitted);
        const themUs = patchedPod(themFirst, await answer(withObject(review, themFirst), policy));
        assert.deepEqual(usThemUs, themUs);
      }),
      { numRuns: RUNS },
    );
  });

  it('keeps unknown fields anywhere', async () => {
    await fc.assert(
      fc.asyncProperty(pod, config, async (review, policy) => {
        const stored = patchedPod(review.request.object, await answer(review, policy)) as Pod &
          Record<string, unknown>;
        const expected = (review.request.object as unknown as Record<string, unknown>)[UNKNOWN];
        assert.deepEqual(stored[UNKNOWN], expected);
        assert.deepEqual((stored.spec as unknown as Record<string, unknown>)[UNKNOWN], expected);
        assert.deepEqual((stored.metadata as Record<string, unknown>)[UNKNOWN], expected);
        assert.deepEqual(
          (stored.spec!.containers[0] as unknown as Record<string, unknown>)[UNKNOWN],
          expected,
        );
      }),
      { numRuns: RUNS },
    );
  });

  it("satisfies exactly the chosen route's pool: never another's, never a contradiction", async () => {
    await fc.assert(
      fc.asyncProperty(
        pod,
        config.filter((p) => p.config.mode === 'enforce'),
        async (review, policy) => {
          const outcome = await answer(review, policy);
          const stored = patchedPod(review.request.object, outcome);
          const route = policy.route(outcome.summary.decision!.route);
          const spec = stored.spec!;
          assert.equal(
            spec.runtimeClassName ?? null,
            route.runtimeClassName ??
              (review.request.object.spec!.runtimeClassName === 'gvisor' ? 'gvisor' : null),
          );
          for (const [k, v] of Object.entries(route.nodeSelector))
            assert.equal(spec.nodeSelector?.[k], v, `route pair ${k}=${v}`);
          const terms =
            spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
          if (terms)
            assert.ok(
              terms.every((t) => (t.matchExpressions?.length ?? 0) + (t.matchFields?.length ?? 0) > 0),
              'no empty term',
            );
          for (const [k, theirs] of route.others.flatMap((o) => Object.entries(o.nodeSelector))) {
            const mine = route.nodeSelector[k];
            if (mine === theirs) continue;
            assert.notEqual(
              spec.nodeSelector?.[k],
              theirs,
              `nodeSelector asks for the other pool's ${k}=${theirs}`,
            );
            for (const t of terms ?? []) {
              for (const e of t.matchExpressions ?? []) {
                if (e.key !== k) continue;
                if (mine !== undefined)
                  assert.ok(admitsValue(e, mine), `expression ${JSON.stringify(e)} contradicts ${k}=${mine}`);
                else
                  assert.ok(!admitsValue(e, theirs), `expression ${JSON.stringify(e)} admits the other pool`);
              }
            }
            if (mine === undefined) {
              for (const t of spec.tolerations ?? []) {
                const tolerated = t.key === k && (t.operator === 'Exists' || (t.value ?? '') === theirs);
                assert.ok(!tolerated, `toleration ${JSON.stringify(t)} lets the pod onto the other pool`);
              }
            }
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('never throws on arbitrary JSON, as a body or as the object', async () => {
    const policy = policyFrom();
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (value) => {
        const asBody = await reviewAdmission(value, { policy });
        assert.equal(asBody.ok, false);
        const review = structuredClone(BASES[0]!) as unknown as { request: Record<string, unknown> };
        review.request.object = value;
        const asObject = await reviewAdmission(review, { policy });
        assert.ok(asObject.ok);
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws on a build pod whose fields have arbitrary JSON in them', async () => {
    const policy = policyFrom();
    const field = fc.constantFrom(
      'nodeSelector',
      'tolerations',
      'affinity',
      'containers',
      'initContainers',
      'runtimeClassName',
      'automountServiceAccountToken',
    );
    await fc.assert(
      fc.asyncProperty(field, fc.jsonValue({ maxDepth: 4 }), async (name, value) => {
        const review = structuredClone(BASES[1]!);
        (review.request.object.spec as unknown as Record<string, unknown>)[name] = value;
        const outcome = await reviewAdmission(review, { policy });
        assert.ok(outcome.ok);
        if (!outcome.review.response.allowed)
          assert.match(outcome.review.response.status!.message, /cannot route/);
      }),
      { numRuns: RUNS },
    );
  });
});
