// The routing rules and the mutation, asserted on the pod you get by applying the returned patch.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container } from '@kubernetes/client-node';
import type { Pod } from '../src/kube/pod.js';
import {
  ANNOTATION,
  admit,
  answer,
  fixture,
  patchOf,
  patchedPod,
  policyFrom,
  withPod,
  type Review,
} from './helpers.js';

const KATA_TOLERATION = {
  key: 'dedicated',
  operator: 'Equal',
  value: 'screwdriver-kata',
  effect: 'NoSchedule',
};

describe('a plain executor-k8s build pod', () => {
  it('is routed to kata: runtime class, pool, toleration, annotations, automount', async () => {
    const review = fixture('build-plain');
    const { pod, response } = await admit(review);
    const submitted = review.request.object;

    assert.equal(response.uid, review.request.uid);
    assert.equal(response.allowed, true);
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.deepEqual(pod.spec!.nodeSelector, { dedicated: 'screwdriver-kata' });
    assert.deepEqual(pod.spec!.tolerations, [KATA_TOLERATION], 'the old pool toleration is taken over');
    assert.equal(
      pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution,
      undefined,
      'the required term only asked for the old pool, so it is gone rather than left matching nothing',
    );
    assert.deepEqual(
      pod.spec!.affinity!.nodeAffinity!.preferredDuringSchedulingIgnoredDuringExecution,
      submitted.spec!.affinity!.nodeAffinity!.preferredDuringSchedulingIgnoredDuringExecution,
      "the submitter's preferences are kept",
    );
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    const annotations = pod.metadata!.annotations!;
    assert.equal(annotations[ANNOTATION('route')], 'kata');
    assert.equal(annotations[ANNOTATION('reason')], 'default');
    assert.match(annotations[ANNOTATION('bucket')]!, /^\d{1,2}$/);
    assert.match(annotations[ANNOTATION('config')]!, /^[0-9a-f]{12}$/);
    assert.equal(response.auditAnnotations!.route, 'kata');
    assert.match(response.auditAnnotations!.reason!, /^default/);
    // Everything the webhook does not own is exactly as submitted; a failed container's status
    // falls back to its last log lines.
    const withFallback = (cs: V1Container[] = []) =>
      cs.map((c) => ({ ...c, terminationMessagePolicy: 'FallbackToLogsOnError' }));
    assert.deepEqual(pod.spec!.containers, withFallback(submitted.spec!.containers));
    assert.deepEqual(pod.spec!.initContainers, withFallback(submitted.spec!.initContainers));
    assert.deepEqual(pod.spec!.volumes, submitted.spec!.volumes);
    assert.deepEqual(pod.metadata!.labels, { ...submitted.metadata!.labels, [ANNOTATION('route')]: 'kata' });
  });

  it('keeps its own requirements on keys the webhook does not own', async () => {
    const review = withPod(fixture('build-plain'), (pod) => {
      const term =
        pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!
          .nodeSelectorTerms[0]!;
      term.matchExpressions!.push({ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] });
      pod.spec!.tolerations!.push({ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' });
      pod.spec!.nodeSelector = { 'disk.example.com/speed': 'fast', dedicated: 'screwdriver' };
    });
    const { pod, response } = await admit(review);
    assert.deepEqual(
      pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms,
      [{ matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] }] }],
    );
    assert.deepEqual(pod.spec!.tolerations, [
      { key: 'gpu', operator: 'Exists', effect: 'NoSchedule' },
      KATA_TOLERATION,
    ]);
    assert.deepEqual(pod.spec!.nodeSelector, {
      'disk.example.com/speed': 'fast',
      dedicated: 'screwdriver-kata',
    });
    assert.ok(
      response.warnings!.some((w) => w.includes('nodeSelector dedicated=screwdriver replaced')),
      String(response.warnings),
    );
  });

  it("adds the route's own tolerations, annotations and preferred placement once", async () => {
    const policy = policyFrom(`
routes:
  kata:
    preferredNodeSelectors: {zone: us-west-2b}
    tolerations: [{key: kata, operator: Exists}]
    annotations: {io.katacontainers.config.hypervisor.kernel_params: "vsyscall=emulate"}
`);
    const review = fixture('build-plain');
    const { pod } = await admit(review, policy);
    assert.deepEqual(pod.spec!.tolerations, [KATA_TOLERATION, { key: 'kata', operator: 'Exists' }]);
    assert.equal(
      pod.metadata!.annotations!['io.katacontainers.config.hypervisor.kernel_params'],
      'vsyscall=emulate',
    );
    const preferred = pod.spec!.affinity!.nodeAffinity!.preferredDuringSchedulingIgnoredDuringExecution!;
    assert.equal(preferred.length, 2);
    assert.deepEqual(preferred[1], {
      weight: 100,
      preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['us-west-2b'] }] },
    });

    const again = await answer({ ...review, request: { ...review.request, object: pod } }, policy);
    assert.deepEqual(patchOf(again), [], 'reinvocation adds nothing twice');
  });

  it('turns automountServiceAccountToken off with a warning when the pod asked for it', async () => {
    const { pod, response } = await admit(
      withPod(fixture('build-plain'), (p) => {
        p.spec!.automountServiceAccountToken = true;
      }),
    );
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.ok(response.warnings!.some((w) => w.startsWith('automountServiceAccountToken')));
  });

  it('takes out the token volume the ServiceAccount plugin mounted before the webhook ran', async () => {
    const mount = {
      name: 'kube-api-access-x7k2p',
      readOnly: true,
      mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
    };
    const review = withPod(fixture('build-plain'), (pod) => {
      delete pod.spec!.automountServiceAccountToken;
      pod.spec!.volumes!.push({
        name: 'kube-api-access-x7k2p',
        projected: {
          defaultMode: 420,
          sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }],
        },
      });
      pod.spec!.containers[0]!.volumeMounts!.push(mount);
      pod.spec!.initContainers![0]!.volumeMounts!.push(mount);
      pod.spec!.volumes!.push({ name: 'kube-api-access-mine', configMap: { name: 'not-a-token' } });
    });
    const { pod, response } = await admit(review);
    const submitted = fixture('build-plain').request.object.spec!;
    assert.equal(pod.spec!.automountServiceAccountToken, false);
    assert.deepEqual(pod.spec!.volumes, [
      ...submitted.volumes!,
      { name: 'kube-api-access-mine', configMap: { name: 'not-a-token' } },
    ]);
    assert.deepEqual(pod.spec!.containers[0]!.volumeMounts, submitted.containers[0]!.volumeMounts);
    assert.deepEqual(pod.spec!.initContainers![0]!.volumeMounts, submitted.initContainers![0]!.volumeMounts);
    assert.ok(response.warnings!.some((w) => w.includes('kube-api-access-x7k2p removed')));
  });
});

describe('privileged containers', () => {
  it('turns privileged off on the build container and keeps it on the dind sidecar', async () => {
    const { pod, response } = await admit(fixture('build-dind'));
    const byName = Object.fromEntries(pod.spec!.containers.map((c) => [c.name, c]));
    assert.equal(byName['beta-1002']!.securityContext!.privileged, false);
    assert.equal(byName['dind']!.securityContext!.privileged, true);
    assert.ok(
      response.warnings!.some((w) => w.includes('"beta-1002"') && w.includes('privileged turned off')),
    );
  });

  it('keeps buildkitd privileged and checks init and ephemeral containers too', async () => {
    const review = withPod(fixture('build-buildkit'), (pod) => {
      pod.spec!.initContainers![0]!.securityContext = { privileged: true };
      pod.spec!.ephemeralContainers = [
        { name: 'debug', image: 'busybox', securityContext: { privileged: true } },
      ];
    });
    const { pod } = await admit(review);
    assert.equal(pod.spec!.containers.find((c) => c.name === 'buildkitd')!.securityContext!.privileged, true);
    assert.equal(pod.spec!.initContainers![0]!.securityContext!.privileged, false);
    assert.equal(pod.spec!.ephemeralContainers![0]!.securityContext!.privileged, false);
  });

  it('leaves privileged alone on a route that allows it', async () => {
    const { pod } = await admit(fixture('build-dind'), policyFrom('routes: {kata: {allowPrivileged: true}}'));
    assert.equal(pod.spec!.containers[0]!.securityContext!.privileged, true);
  });
});

describe('excluded images go to legacy', () => {
  it('takes the kata runtime and pool away from an executor pod that asked for them', async () => {
    const { pod, response } = await admit(fixture('build-rhel6'));
    assert.equal(pod.spec!.runtimeClassName, undefined, 'an excluded image must not be forced onto kata');
    assert.equal(pod.spec!.nodeSelector, undefined);
    assert.equal(pod.spec!.affinity, undefined, 'the only affinity asked for the kata pool');
    assert.deepEqual(pod.spec!.tolerations, []);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'excluded-image');
    assert.match(
      pod.metadata!.annotations![ANNOTATION('detail')]!,
      /registry\.example\/ci\/RHEL6-base:1 matches exclusion "rhel-\?6\(\?!\[0-9\]\)"/,
    );
    assert.ok(response.warnings!.some((w) => w.startsWith('runtimeClassName "kata" removed')));
  });

  for (const [where, change] of [
    [
      'an init container',
      (r: Review) => {
        r.request.object.spec!.initContainers![0]!.image = 'x/notrhel6y';
      },
    ],
    [
      'an ephemeral container',
      (r: Review) => {
        r.request.object.spec!.ephemeralContainers = [{ name: 'dbg', image: 'centos/RHEL6:latest' }];
      },
    ],
    [
      'a sidecar',
      (r: Review) => {
        r.request.object.spec!.containers.push({ name: 'side', image: 'quay.io/rhel6/tools' });
      },
    ],
  ] as const) {
    it(`counts an image in ${where}`, async () => {
      const review = structuredClone(fixture('build-plain'));
      change(review);
      const { pod } = await admit(review);
      assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
      assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'excluded-image');
      assert.equal(pod.spec!.runtimeClassName, undefined);
    });
  }

  it("keeps the executor's own non-kata pool on the legacy route", async () => {
    const review = withPod(fixture('build-plain'), (pod) => {
      pod.spec!.containers[0]!.image = 'rhel6:latest';
    });
    const { pod } = await admit(review);
    const submitted = review.request.object.spec!;
    assert.deepEqual(pod.spec!.tolerations, submitted.tolerations);
    assert.deepEqual(pod.spec!.affinity, submitted.affinity);
  });

  it("accepts Screwdriver's `exclusion` spelling and regular expressions", async () => {
    const policy = policyFrom('exclusion: ["^node:2\\\\d$"]');
    const { pod } = await admit(fixture('build-plain'), policy);
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'excluded-image');
  });
});

describe('requests the webhook does not act on', () => {
  const untouched: [string, (r: Review) => void][] = [
    [
      'a pod in another namespace',
      (r) => {
        r.request.namespace = 'default';
      },
    ],
    [
      'an UPDATE',
      (r) => {
        r.request.operation = 'UPDATE';
      },
    ],
    [
      'a DELETE',
      (r) => {
        r.request.operation = 'DELETE';
        (r.request as Record<string, unknown>).object = null;
      },
    ],
    [
      'another kind',
      (r) => {
        r.request.kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
      },
    ],
  ];
  for (const [what, change] of untouched) {
    it(`allows ${what} without a patch`, async () => {
      const review = structuredClone(fixture('build-plain'));
      change(review);
      const { review: out, summary } = await answer(review);
      assert.deepEqual(out.response, { uid: review.request.uid, allowed: true });
      assert.ok(summary.skipped);
    });
  }

  it('reads the namespace from the request, not the object', async () => {
    const review = withPod(fixture('build-plain'), (pod) => {
      pod.metadata!.namespace = 'default';
    });
    const { pod } = await admit(review);
    assert.equal(pod.spec!.runtimeClassName, 'kata');
  });
});

describe('the submitted-value memory', () => {
  const memoryKey = ANNOTATION('submitted');
  // What a hardening webhook ordered before kata-admission set, and a memory claiming it was otherwise.
  const hardened = (pod: Pod, memory: string) => {
    pod.spec!.containers[0]!.securityContext = {
      privileged: false,
      seccompProfile: { type: 'RuntimeDefault' },
    };
    pod.metadata!.annotations = { ...pod.metadata!.annotations, [memoryKey]: memory };
  };

  it('ignores a forged memory, with a warning, and restores nothing from it', async () => {
    const forged = JSON.stringify({
      mac: 'AAAA',
      memory: {
        'container/beta-1001': {
          was: { privileged: true, seccompProfile: { type: 'Unconfined' } },
          wrote: null,
        },
        nodeSelector: { was: { dedicated: 'screwdriver' }, wrote: { dedicated: 'screwdriver-kata' } },
      },
    });
    const { pod, outcome } = await admit(withPod(fixture('build-plain'), (p) => hardened(p, forged)));
    assert.ok(outcome.summary.warnings.some((w) => w.includes(`${memoryKey} ignored`)));
    assert.deepEqual(pod.spec!.containers[0]!.securityContext, {
      privileged: false,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual(pod.spec!.nodeSelector, { dedicated: 'screwdriver-kata' });
  });

  it("verifies a memory's exact text: a genuine one edited, re-serialised or extended is ignored", async () => {
    const first = await admit(fixture('build-dind'));
    const genuine = first.pod.metadata!.annotations![memoryKey]!;
    const { mac, memory } = JSON.parse(genuine) as { mac: string; memory: Record<string, unknown> };
    const tampered = [
      // What was replaced, claimed to have been asked for otherwise: same MAC, other memory.
      genuine.replace('"privileged":true', '"privileged":false'),
      // The same JSON value in other bytes (keys in another order, spaces).
      JSON.stringify({ memory, mac }),
      JSON.stringify({ mac, memory }, null, 1),
      `${genuine.slice(0, -1)},"extra":1}`,
    ];
    assert.notEqual(tampered[0], genuine, 'the edit changed the text');
    for (const text of tampered) {
      const { outcome } = await admit({
        ...fixture('build-dind'),
        request: {
          ...fixture('build-dind').request,
          object: {
            ...first.pod,
            metadata: {
              ...first.pod.metadata,
              annotations: { ...first.pod.metadata!.annotations, [memoryKey]: text },
            },
          },
        },
      });
      assert.ok(
        outcome.summary.warnings.some((w) => w.includes(`${memoryKey} ignored`)),
        `not ignored: ${text.slice(0, 80)}`,
      );
    }
  });

  it('ignores a genuine memory replayed onto another pod', async () => {
    const first = await admit(fixture('build-dind'));
    const genuine = first.pod.metadata!.annotations![memoryKey]!;
    assert.ok(genuine, 'the first pod has a memory');
    const other = withPod(fixture('build-dind'), (p) => {
      p.metadata!.name = 'someone-else';
      p.metadata!.annotations = { [memoryKey]: genuine };
    });
    const { outcome } = await admit(other);
    assert.ok(outcome.summary.warnings.some((w) => w.includes(`${memoryKey} ignored`)));
    // The same memory on its own pod verifies: a reinvocation changes nothing.
    const again = await admit({
      ...fixture('build-dind'),
      request: { ...fixture('build-dind').request, object: first.pod },
    });
    assert.ok(!again.outcome.summary.warnings.some((w) => w.includes('ignored')));
    assert.deepEqual(patchOf(again.outcome), []);
  });
});

describe('admission semantics', () => {
  it('gives a dryRun request the same decision and patch', async () => {
    const review = fixture('build-dind');
    const dry = structuredClone(review);
    dry.request.dryRun = true;
    assert.deepEqual(patchOf(await answer(dry)), patchOf(await answer(review)));
  });

  for (const name of ['build-plain', 'build-dind', 'build-rhel6', 'build-buildkit']) {
    it(`answers the reinvocation of an already mutated ${name} with an empty patch and the same decision`, async () => {
      const review = fixture(name);
      const first = await answer(review);
      const mutated = patchedPod(review.request.object, first);
      const second = await answer({ ...review, request: { ...review.request, object: mutated } });
      assert.deepEqual(patchOf(second), []);
      assert.deepEqual(second.summary.decision, first.summary.decision);
      assert.deepEqual(second.review.response.auditAnnotations, first.review.response.auditAnnotations);
    });
  }

  it('echoes admission.k8s.io/v1beta1', async () => {
    const review = { ...fixture('build-plain'), apiVersion: 'admission.k8s.io/v1beta1' };
    const { review: out } = await answer(review);
    assert.equal(out.apiVersion, 'admission.k8s.io/v1beta1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response.uid, review.request.uid);
  });

  it('escapes "/" and "~" in JSON pointers and keeps odd keys intact', async () => {
    const review = withPod(fixture('build-plain'), (pod) => {
      pod.metadata!.annotations = { 'odd~key/with/slashes': '1', [ANNOTATION('route')]: 'stale' };
    });
    const out = await answer(review);
    const paths = patchOf(out).map((op) => op.path);
    assert.ok(paths.includes('/metadata/annotations/kata-admission.screwdriver.cd~1route'), paths.join(' '));
    const pod = patchedPod(review.request.object, out);
    assert.equal(pod.metadata!.annotations!['odd~key/with/slashes'], '1');
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
  });

  it('refuses a build pod it cannot route, naming the problem', async () => {
    const review = withPod(fixture('build-plain'), (pod) => {
      delete (pod.spec as unknown as Record<string, unknown>).containers;
    });
    const { review: out } = await answer(review);
    assert.equal(out.response.allowed, false);
    assert.equal(out.response.patch, undefined);
    assert.match(out.response.status!.message, /spec\.containers/);
  });

  it('refuses, naming the field, a build pod whose runtimeClassName or token setting is not of its type', async () => {
    for (const [field, value] of [
      ['runtimeClassName', { toString: null }],
      ['automountServiceAccountToken', 'no'],
    ] as const) {
      const review = withPod(fixture('build-plain'), (pod) => {
        (pod.spec as unknown as Record<string, unknown>)[field] = value;
      });
      const { review: out } = await answer(review);
      assert.equal(out.response.allowed, false);
      assert.match(
        out.response.status!.message,
        new RegExp(`cannot route this build pod: spec\\.${field}: expected`),
      );
    }
  });

  it('refuses a build pod whose spec is missing', async () => {
    const review = withPod(fixture('build-plain'), (pod) => {
      delete pod.spec;
    });
    const { review: out } = await answer(review);
    assert.equal(out.response.allowed, false);
    assert.match(out.response.status!.message, /spec/);
  });
});

describe('pins and shadow mode', () => {
  it("pins a job to a route with the pin's reason", async () => {
    const policy = policyFrom(`
pins:
  - selector: {matchLabels: {screwdriver.cd/job: publish}}
    route: legacy
    reason: needs nested KVM
`);
    const { pod } = await admit(fixture('build-dind'), policy);
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'pin');
    assert.match(pod.metadata!.annotations![ANNOTATION('detail')]!, /pins\[0\]: needs nested KVM/);
    const { pod: other } = await admit(fixture('build-plain'), policy);
    assert.equal(other.metadata!.annotations![ANNOTATION('route')], 'kata');
  });

  it('an excluded image wins over a kata pin', async () => {
    const policy = policyFrom('pins: [{selector: {matchLabels: {app: screwdriver}}, route: kata}]');
    const { pod } = await admit(fixture('build-rhel6'), policy);
    assert.equal(pod.metadata!.annotations![ANNOTATION('reason')], 'excluded-image');
  });

  it('in shadow mode writes only the decision annotations and the route label', async () => {
    const review = fixture('build-dind');
    const out = await answer(review, policyFrom('mode: shadow'));
    const pod = patchedPod(review.request.object, out);
    const { annotations, labels, ...metadata } = pod.metadata!;
    const { labels: submittedLabels, ...submitted } = review.request.object.metadata!;
    assert.deepEqual(pod.spec, review.request.object.spec);
    assert.deepEqual(metadata, submitted);
    assert.deepEqual(labels, { ...submittedLabels, [ANNOTATION('route')]: 'kata' });
    assert.equal(annotations![ANNOTATION('route')], 'kata');
    assert.equal(annotations![ANNOTATION('mode')], 'shadow');
    assert.equal(out.review.response.warnings, undefined);
  });
});

describe('RuntimeClass overhead', () => {
  const overhead = { cpu: '250m', memory: '160Mi' };
  it("is removed with the runtime class it was computed for, so the plugin can set the new class's", async () => {
    const excluded = await admit(
      withPod(fixture('build-rhel6'), (p) => {
        p.spec!.overhead = overhead;
      }),
    );
    assert.equal(excluded.pod.spec!.runtimeClassName, undefined);
    assert.equal(excluded.pod.spec!.overhead, undefined);
    const replaced = await admit(
      withPod(fixture('build-plain'), (p) => {
        p.spec!.runtimeClassName = 'gvisor';
        p.spec!.overhead = { cpu: '10m' };
      }),
    );
    assert.equal(replaced.pod.spec!.runtimeClassName, 'kata');
    assert.equal(replaced.pod.spec!.overhead, undefined);
  });

  it('stays when the class does', async () => {
    const { pod } = await admit(
      withPod(fixture('build-plain'), (p) => {
        p.spec!.runtimeClassName = 'kata';
        p.spec!.overhead = overhead;
      }),
    );
    assert.deepEqual(pod.spec!.overhead, overhead);
  });
});
