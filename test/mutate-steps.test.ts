// Each step of the mutation on its own (src/policy/mutate/): a spec in, the spec out, the warnings.
// Expected values are written out by hand from docs/routing.md.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTAINER_KINDS } from '../src/kube/pod.js';
import { automount } from '../src/policy/mutate/automount.js';
import { overhead } from '../src/policy/mutate/overhead.js';
import { placement } from '../src/policy/mutate/placement.js';
import { podSecurity } from '../src/policy/mutate/pod-security.js';
import { privileges } from '../src/policy/mutate/privileges.js';
import { runtimeClass } from '../src/policy/mutate/runtime-class.js';
import { terminationMessage } from '../src/policy/mutate/termination-message.js';
import { memoryFloor } from '../src/policy/mutate/memory-floor.js';
import type { Spec, SpecStep, StepContext } from '../src/policy/mutate/step.js';
import type { ImageFacts } from '../src/policy/decide.js';
import type { Policy } from '../src/policy/policy.js';
import { pinDigests } from '../src/policy/mutate/pin-digests.js';
import { policyFrom } from './helpers.js';

const defaultPolicy = policyFrom();

function run(
  step: SpecStep,
  spec: Spec,
  routeName = 'kata',
  received: Spec = spec,
  {
    facts,
    with: policy,
    overheads,
  }: { facts?: ImageFacts; with?: Policy; overheads?: StepContext['overheads'] } = {},
) {
  policy ??= defaultPolicy;
  const warnings: string[] = [];
  const route = policy.route(routeName);
  const ctx: StepContext = {
    route,
    others: route.others,
    owned: policy.ownedKeys,
    decision: { route: routeName, rule: 'default', detail: 'test', rolloutKey: 'k', bucket: 0 },
    policy,
    received,
    kinds: CONTAINER_KINDS,
    facts: facts ?? new Map(),
    overheads: overheads ?? new Map(),
    warn: (m) => void warnings.push(m),
  };
  return { spec: step(spec, ctx), warnings };
}

const container = (extra: object = {}) => ({ name: 'build', image: 'node:24', ...extra });

describe('mutation steps', () => {
  it('every step leaves a spec it has nothing to change as the same object', () => {
    const spec: Spec = {
      runtimeClassName: 'kata',
      nodeSelector: { dedicated: 'screwdriver-kata' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'screwdriver-kata', effect: 'NoSchedule' }],
      automountServiceAccountToken: false,
      containers: [
        container({
          terminationMessagePolicy: 'FallbackToLogsOnError',
          resources: { limits: { memory: '2Gi' } },
        }),
      ],
    };
    for (const step of [
      runtimeClass,
      placement,
      privileges,
      podSecurity,
      automount,
      terminationMessage,
      overhead,
    ])
      assert.equal(run(step, spec).spec, spec, step.name);
  });

  it('runtimeClass: the route replaces another class; a route without one only removes other routes', () => {
    const gvisor = run(runtimeClass, { runtimeClassName: 'gvisor', containers: [container()] });
    assert.equal(gvisor.spec.runtimeClassName, 'kata');
    assert.deepEqual(gvisor.warnings, ['runtimeClassName "gvisor" replaced by "kata"']);
    const onLegacy = run(runtimeClass, { runtimeClassName: 'kata', containers: [container()] }, 'legacy');
    assert.equal('runtimeClassName' in onLegacy.spec, false);
    assert.deepEqual(onLegacy.warnings, ['runtimeClassName "kata" removed: test']);
    const kept = run(runtimeClass, { runtimeClassName: 'gvisor', containers: [container()] }, 'legacy');
    assert.equal(kept.spec.runtimeClassName, 'gvisor');
  });

  it('placement: the old pool goes, the route pool and its toleration come, foreign keys stay', () => {
    const { spec, warnings } = run(placement, {
      nodeSelector: { dedicated: 'screwdriver', zone: 'a' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'screwdriver', effect: 'NoSchedule' }],
      containers: [container()],
    });
    assert.deepEqual(spec.nodeSelector, { zone: 'a', dedicated: 'screwdriver-kata' });
    assert.deepEqual(spec.tolerations, [
      { key: 'dedicated', operator: 'Equal', value: 'screwdriver-kata', effect: 'NoSchedule' },
    ]);
    assert.deepEqual(warnings, [
      'nodeSelector dedicated=screwdriver replaced by dedicated=screwdriver-kata',
      'toleration dedicated=screwdriver removed: this build is routed to the kata pool',
    ]);
  });

  it('placement: a keyless Exists toleration, which admits every pool, is removed', () => {
    const { spec } = run(
      placement,
      { tolerations: [{ operator: 'Exists' }], containers: [container()] },
      'legacy',
    );
    assert.deepEqual(spec.tolerations ?? [], []);
  });

  it('privileges: only the named sidecar keeps privileged; capabilities beyond the baseline go', () => {
    const { spec, warnings } = run(privileges, {
      containers: [
        container({ securityContext: { privileged: true, capabilities: { add: ['SYS_ADMIN', 'CHOWN'] } } }),
        { name: 'dind', image: 'docker:dind', securityContext: { privileged: true } },
      ],
    });
    assert.deepEqual(spec.containers[0]!.securityContext, {
      privileged: false,
      capabilities: { add: ['CHOWN'] },
    });
    assert.deepEqual(spec.containers[1]!.securityContext, { privileged: true });
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /^container "build": privileged turned off/);
    assert.match(warnings[1]!, /^container "build": capabilities SYS_ADMIN removed/);
  });

  it('podSecurity: Unconfined seccomp becomes RuntimeDefault and hostPorts are dropped', () => {
    const { spec, warnings } = run(podSecurity, {
      securityContext: { seccompProfile: { type: 'Unconfined' } },
      containers: [container({ ports: [{ containerPort: 80, hostPort: 8080 }] })],
    });
    assert.deepEqual(spec.securityContext, { seccompProfile: { type: 'RuntimeDefault' } });
    assert.deepEqual(spec.containers[0]!.ports, [{ containerPort: 80 }]);
    assert.equal(warnings.length, 2);
  });

  it('automount: the flag off, and the token volume the ServiceAccount plugin mounted taken out', () => {
    const token = {
      name: 'kube-api-access-x1',
      projected: { sources: [{ serviceAccountToken: { path: 'token' } }] },
    };
    const { spec, warnings } = run(automount, {
      volumes: [token, { name: 'workspace', emptyDir: {} }],
      containers: [
        container({
          volumeMounts: [
            { name: 'kube-api-access-x1', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
            { name: 'workspace', mountPath: '/sd' },
          ],
        }),
      ],
    });
    assert.equal(spec.automountServiceAccountToken, false);
    assert.deepEqual(spec.volumes, [{ name: 'workspace', emptyDir: {} }]);
    assert.deepEqual(spec.containers[0]!.volumeMounts, [{ name: 'workspace', mountPath: '/sd' }]);
    assert.deepEqual(warnings, [
      'service account token volume kube-api-access-x1 removed (automountServiceAccountToken: false)',
    ]);
  });

  it('overhead: kept while the class is the one it was computed for, removed when it changed', () => {
    const received: Spec = {
      runtimeClassName: 'gvisor',
      overhead: { memory: '20Mi' },
      containers: [container()],
    };
    const changed = { ...received, runtimeClassName: 'kata' };
    assert.equal('overhead' in run(overhead, changed, 'kata', received).spec, false);
    assert.deepEqual(run(overhead, received, 'kata', received).spec.overhead, { memory: '20Mi' });
  });

  it("overhead: for another class, the cluster's RuntimeClass overhead once read (none: none)", () => {
    const received: Spec = {
      runtimeClassName: 'gvisor',
      overhead: { memory: '20Mi' },
      containers: [container()],
    };
    const changed = { ...received, runtimeClassName: 'kata' };
    const known = new Map([
      ['kata', { cpu: '250m', memory: '320Mi' }],
      ['plain', null],
    ]);
    assert.deepEqual(run(overhead, changed, 'kata', received, { overheads: known }).spec.overhead, {
      cpu: '250m',
      memory: '320Mi',
    });
    const toPlain = { ...received, runtimeClassName: 'plain' };
    assert.equal('overhead' in run(overhead, toPlain, 'kata', received, { overheads: known }).spec, false);
  });

  it('terminationMessage: build and init containers fall back to their logs on error; ephemeral ones are left', () => {
    const spec: Spec = {
      containers: [
        container({ name: 'build' }),
        container({ name: 'dind', terminationMessagePolicy: 'File' }),
        container({ name: 'own', terminationMessagePolicy: 'FallbackToLogsOnError' }),
      ],
      initContainers: [container({ name: 'launcher' })],
      ephemeralContainers: [container({ name: 'debug' })],
    };
    const { spec: out, warnings } = run(terminationMessage, spec);
    assert.deepEqual(
      [...out.containers, ...out.initContainers!].map((c) => c.terminationMessagePolicy),
      ['FallbackToLogsOnError', 'FallbackToLogsOnError', 'FallbackToLogsOnError', 'FallbackToLogsOnError'],
    );
    assert.equal(out.containers[2], spec.containers[2], 'a container that chose it is the same object');
    assert.equal(out.ephemeralContainers, spec.ephemeralContainers);
    assert.deepEqual(warnings, []);
  });

  it("memoryFloor: a build container below the sandboxed route's floor, or without a limit, gets it", () => {
    const spec: Spec = {
      containers: [
        container({ name: 'tiny', resources: { limits: { cpu: '500m', memory: '64Mi' } } }),
        container({ name: 'none' }),
        container({ name: 'asks', resources: { requests: { memory: '768Mi' } } }),
        container({ name: 'enough', resources: { limits: { memory: '1Gi' } } }),
      ],
      initContainers: [container({ name: 'launcher' })],
    };
    const { spec: out, warnings } = run(memoryFloor, spec);
    assert.deepEqual(
      out.containers.map((c) => c.resources),
      [
        { limits: { cpu: '500m', memory: '512Mi' } },
        { limits: { memory: '512Mi' } },
        { requests: { memory: '768Mi' }, limits: { memory: '768Mi' } },
        { limits: { memory: '1Gi' } },
      ],
    );
    assert.equal(out.containers[3], spec.containers[3]);
    assert.equal(
      out.initContainers,
      spec.initContainers,
      'init containers run before the build, one at a time',
    );
    assert.deepEqual(warnings, [
      'container "tiny": memory limit 64Mi raised to 512Mi (the kata route\'s VM floor is 512Mi)',
      'container "none": no memory limit; 512Mi set (the kata route\'s VM floor is 512Mi)',
      'container "asks": no memory limit; 768Mi set (the kata route\'s VM floor is 512Mi)',
    ]);
    assert.equal(run(memoryFloor, spec, 'legacy').spec, spec, 'no VM on legacy: no floor');
  });

  it('pinDigests: with content scanning, a tag is pinned to the digest that was judged, keeping the tag', () => {
    const scanning = policyFrom('imageInspection: {enabled: true, content: {enabled: true}}');
    const digest = `sha256:${'a'.repeat(64)}`;
    const facts: ImageFacts = new Map([
      ['registry.example/ci/node:24', { class: 'ok', detail: 'content: no 32-bit code', digest }],
      [`registry.example/ci/tool@${digest}`, { class: 'ok', detail: 'content: no 32-bit code' }],
    ]);
    const spec: Spec = {
      containers: [
        container({ image: 'registry.example/ci/node:24' }),
        container({ name: 'unknown', image: 'x:1' }),
      ],
      initContainers: [container({ name: 'tool', image: `registry.example/ci/tool@${digest}` })],
    };
    const out = run(pinDigests, spec, 'kata', spec, { facts, with: scanning }).spec;
    assert.deepEqual(
      [...out.containers, ...out.initContainers!].map((c) => c.image),
      [`registry.example/ci/node:24@${digest}`, 'x:1', `registry.example/ci/tool@${digest}`],
    );
    assert.equal(out.initContainers, spec.initContainers, 'a reference with a digest is already pinned');
    const off = policyFrom('imageInspection: {enabled: true, content: {enabled: true, pinDigests: false}}');
    assert.equal(run(pinDigests, spec, 'kata', spec, { facts, with: off }).spec, spec);
    assert.equal(
      run(pinDigests, spec, 'kata', spec, { facts }).spec,
      spec,
      'no content scanning: no pinning',
    );
  });
});
