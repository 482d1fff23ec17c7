// Isolation against a hostile submitter, through a real kube-apiserver with deploy/ installed as the
// README says: every attack is rejected, or stored routed and satisfying its route's invariants, and
// the webhook and the guard agree on generated pods.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PatchStrategy, type V1Pod } from '@kubernetes/client-node';
import fc from 'fast-check';
import { reviewAdmission } from '../../src/admission/review.js';
import { ANNOTATION, fixture, patchedPod, policyFrom } from '../helpers.js';
import { freePort } from '../cluster/controlplane.js';
import { deployConfigYaml, manifest } from '../cluster/deploy.js';
import { BUILD_NS, Cluster, errorText, podFrom } from '../cluster/harness.js';
import { eventually } from '../https.js';

const KATA_POOL = { key: 'dedicated', value: 'screwdriver-kata' };
const forged = (route: string) => (p: V1Pod) => {
  p.metadata!.annotations = { ...p.metadata!.annotations, [ANNOTATION('route')]: route };
};
const GUARD = /ValidatingAdmissionPolicy 'kata-admission-guard'/;
const KERNEL_PARAMS = 'io.katacontainers.config.hypervisor.kernel_params';
const WEBHOOK_REFUSAL =
  /route\.kata-admission\.screwdriver\.cd\W+ denied the request: kata-admission refuses/;

/** What a hostile submitter adds to get a less isolated pod. */
function escalated(p: V1Pod) {
  p.spec!.hostPID = true;
  p.spec!.volumes!.push({ name: 'host-root', hostPath: { path: '/' } });
  p.spec!.containers[0]!.securityContext = { privileged: true, capabilities: { add: ['SYS_ADMIN'] } };
}

/** The API server's refusal, or '' when it admitted the request. */
async function refusal(request: Promise<unknown>): Promise<string> {
  return request.then(
    () => '',
    (error) => errorText(error),
  );
}

async function rejection(request: Promise<unknown>): Promise<string> {
  const text = await refusal(request);
  assert.notEqual(text, '', 'the request was admitted');
  return text;
}

/** The invariants of the pod's route, checked on what the API server stored. */
function assertRouted(pod: V1Pod) {
  const route = pod.metadata!.annotations![ANNOTATION('route')];
  const privileged = ['dind', 'buildkitd'];
  const containers = [
    ...pod.spec!.containers,
    ...(pod.spec!.initContainers ?? []),
    ...(pod.spec!.ephemeralContainers ?? []),
  ];
  for (const c of containers) {
    if (privileged.includes(c.name)) continue;
    assert.notEqual(c.securityContext?.privileged, true, `${c.name} is privileged`);
    assert.ok(
      !(c.securityContext?.capabilities?.add ?? []).includes('SYS_ADMIN'),
      `${c.name} adds SYS_ADMIN`,
    );
  }
  assert.ok(!pod.spec!.hostPID && !pod.spec!.hostIPC && !pod.spec!.hostNetwork);
  assert.ok(
    (pod.spec!.volumes ?? []).every((v) => !v.hostPath || v.hostPath.path.startsWith('/opt/screwdriver/')),
  );
  if (route === 'kata') {
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.equal(pod.spec!.nodeSelector?.[KATA_POOL.key], KATA_POOL.value);
  } else {
    assert.equal(route, 'legacy');
    assert.notEqual(pod.spec!.runtimeClassName, 'kata');
    assert.ok(
      !(pod.spec!.tolerations ?? []).some(
        (t) =>
          (t.operator === 'Exists' && (!t.key || t.key === KATA_POOL.key)) ||
          (t.key === KATA_POOL.key && t.value === KATA_POOL.value),
      ),
      'no toleration admits the kata pool',
    );
  }
}

describe('isolation through a real kube-apiserver', { timeout: 20 * 60_000 }, () => {
  let cluster: Cluster;
  const create = (pod: V1Pod, dryRun?: 'All') => cluster.createAsExecutor(pod, dryRun);
  const stored = async (pod: V1Pod) =>
    cluster.asExecutor.readNamespacedPod({ name: (await create(pod)).metadata!.name!, namespace: BUILD_NS });

  before(async () => {
    cluster = await Cluster.install();
  });
  after(async () => cluster?.stop());

  it('install step 1 blocks no build before the webhook serves; step 2 then rejects an unrouted one', async () => {
    // Base applied, webhook not serving: the build is admitted (unrouted, with the guard's warning).
    await eventually(
      async () =>
        await create(podFrom('build-plain'), 'All').then(
          () => true,
          () => false,
        ),
      30_000,
      'a build to be admitted',
    );
    const admitted = await create(podFrom('build-plain'));
    assert.equal(admitted.metadata!.annotations?.[ANNOTATION('route')], undefined);

    await cluster.serveAndEnforce();
    const routed = await create(podFrom('build-plain'));
    assert.equal(routed.metadata!.annotations![ANNOTATION('route')], 'kata');
    await cluster.pointWebhookAt(`https://127.0.0.1:${await freePort()}/mutate`);
    try {
      await eventually(
        async () => /failed calling webhook/.test(await rejection(create(podFrom('build-plain'), 'All'))),
        10_000,
        'the enforced webhook to fail closed',
      );
    } finally {
      await cluster.pointWebhookAt(cluster.webhookUrl());
    }
  });

  it('routes the 3.69 MB escaped review with a forged annotation instead of admitting it unmutated, and refuses its escalations', async () => {
    const huge = (p: V1Pod) => {
      forged('kata')(p);
      p.spec!.containers[0]!.env = [
        ...(p.spec!.containers[0]!.env ?? []),
        { name: 'BIG', value: '<'.repeat(600 * 1024) },
      ];
    };
    const message = await rejection(
      create(
        podFrom('build-plain', (p) => {
          huge(p);
          escalated(p);
        }),
        'All',
      ),
    );
    assert.match(message, WEBHOOK_REFUSAL);
    const pod = await stored(podFrom('build-plain', huge));
    assertRouted(pod);
    assert.equal(pod.spec!.containers[0]!.env!.find((e) => e.name === 'BIG')!.value!.length, 600 * 1024);
  });

  it('gains nothing from a forged route annotation with the webhook up', async () => {
    const pod = await stored(
      podFrom('build-dind', (p) => {
        forged('legacy')(p);
        p.spec!.containers[0]!.securityContext = { privileged: true };
      }),
    );
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assertRouted(pod);
    assert.match(
      await rejection(
        create(
          podFrom('build-plain', (p) => {
            forged('kata')(p);
            escalated(p);
          }),
          'All',
        ),
      ),
      WEBHOOK_REFUSAL,
    );
  });

  it('stores Kata annotations, Pod Security fields and a legacy dind as the route wants them, and keeps them on UPDATE', async () => {
    const pod = await stored(
      podFrom('build-plain', (p) => {
        p.metadata!.annotations = {
          [KERNEL_PARAMS]: 'init=/bin/sh agent.debug_console',
          'io.katacontainers.config.hypervisor.default_memory': '200000',
          'container.apparmor.security.beta.kubernetes.io/beta-1001': 'unconfined',
        };
        p.spec!.securityContext = { seccompProfile: { type: 'Unconfined' } };
        p.spec!.containers[0]!.securityContext = { procMount: 'Unmasked' };
        p.spec!.containers[0]!.ports = [{ containerPort: 80, hostPort: 80 }];
      }),
    );
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    const annotations = Object.keys(pod.metadata!.annotations!);
    assert.deepEqual(
      annotations.filter((k) => k.startsWith('io.katacontainers.') || k.startsWith('container.apparmor')),
      [],
    );
    assert.equal(pod.spec!.securityContext!.seccompProfile!.type, 'RuntimeDefault');
    assert.equal(pod.spec!.containers[0]!.securityContext!.procMount, 'Default');
    assert.equal(pod.spec!.containers[0]!.ports![0]!.hostPort, undefined);
    // Annotations stay mutable on a pending pod: the guard keeps Kata's the route's.
    const text = await rejection(
      cluster.objects.patch(
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: pod.metadata!.name!,
            namespace: BUILD_NS,
            annotations: { [KERNEL_PARAMS]: 'init=/bin/sh' },
          },
        } as never,
        undefined,
        undefined,
        'kata-admission-e2e',
        undefined,
        PatchStrategy.MergePatch,
      ),
    );
    assert.match(text, GUARD);
    assert.match(text, /io\.katacontainers/);
    // An excluded docker build goes to legacy (runc): its dind sidecar is not root on the node.
    const legacy = await stored(
      podFrom('build-dind', (p) => {
        p.spec!.containers[0]!.image = 'centos:6';
      }),
    );
    assert.equal(legacy.metadata!.annotations![ANNOTATION('route')], 'legacy');
    for (const c of legacy.spec!.containers) assert.notEqual(c.securityContext?.privileged, true, c.name);
  });

  it('routes builds with a missing or misspelt build label, and refuses them without', async () => {
    for (const change of [
      (p: V1Pod) => {
        delete p.metadata!.labels!.tier;
      },
      (p: V1Pod) => {
        p.metadata!.labels!.tier = 'build';
      },
    ]) {
      const pod = await stored(
        podFrom('build-dind', (p) => {
          change(p);
          p.spec!.containers[0]!.securityContext = { privileged: true };
        }),
      );
      assertRouted(pod);
    }
  });

  const refusals: [string, (p: V1Pod) => void, RegExp][] = [
    [
      'hostPath / on the kata route',
      (p) => {
        p.spec!.volumes!.push({ name: 'root', hostPath: { path: '/' } });
      },
      /hostPath\.path: \W+ is outside the kata route/,
    ],
    [
      'hostPID',
      (p) => {
        p.spec!.hostPID = true;
      },
      /spec\.hostPID/,
    ],
    [
      'nodeName',
      (p) => {
        p.spec!.nodeName = 'kata-node-1';
      },
      /spec\.nodeName/,
    ],
  ];
  for (const [what, change, message] of refusals) {
    it(`refuses ${what}, naming the field`, async () => {
      const text = await rejection(create(podFrom('build-plain', change), 'All'));
      assert.match(text, WEBHOOK_REFUSAL);
      assert.match(text, message);
    });
  }

  it('refuses hostPath / and nodeName on the legacy route; removes a keyless Exists toleration there', async () => {
    assert.match(
      await rejection(
        create(
          podFrom('build-rhel6', (p) => {
            p.spec!.volumes!.push({ name: 'root', hostPath: { path: '/' } });
          }),
          'All',
        ),
      ),
      /outside the legacy route/,
    );
    assert.match(
      await rejection(
        create(
          podFrom('build-rhel6', (p) => {
            p.spec!.nodeName = 'kata-node-1';
          }),
          'All',
        ),
      ),
      /spec\.nodeName/,
    );
    const pod = await stored(
      podFrom('build-rhel6', (p) => {
        p.spec!.tolerations!.push({ operator: 'Exists' });
      }),
    );
    assertRouted(pod);
  });

  it('limits a privileged ephemeral container added to a routed pod', async () => {
    const pod = await stored(podFrom('build-plain'));
    const name = pod.metadata!.name!;
    await cluster.asExecutor.patchNamespacedPodEphemeralcontainers({
      name,
      namespace: BUILD_NS,
      body: [
        {
          op: 'add',
          path: '/spec/ephemeralContainers',
          value: [
            {
              name: 'debugger',
              image: 'busybox',
              securityContext: { privileged: true, capabilities: { add: ['SYS_ADMIN'] } },
            },
          ],
        },
      ],
    });
    const after = await cluster.asExecutor.readNamespacedPod({ name, namespace: BUILD_NS });
    const debuggerContext = after.spec!.ephemeralContainers![0]!.securityContext!;
    assert.equal(debuggerContext.privileged, false);
    assert.deepEqual(debuggerContext.capabilities?.add ?? [], []);
    assertRouted(after);
  });

  it('stores the kata overhead for a pod submitted with another RuntimeClass, and none for one moved to legacy', async () => {
    await cluster.apply({
      apiVersion: 'node.k8s.io/v1',
      kind: 'RuntimeClass',
      metadata: { name: 'kata-fc' },
      handler: 'kata-fc',
      overhead: { podFixed: { cpu: '100m', memory: '130Mi' } },
    });
    const kata = manifest('RuntimeClass', 'kata');
    const moved = await stored(
      podFrom('build-plain', (p) => {
        p.spec!.runtimeClassName = 'kata-fc';
      }),
    );
    assert.equal(moved.spec!.runtimeClassName, 'kata');
    assert.deepEqual({ ...moved.spec!.overhead }, kata.overhead.podFixed);
    const legacy = await stored(podFrom('build-rhel6')); // the executor asked for runtimeClass kata
    assert.equal(legacy.spec!.runtimeClassName, undefined);
    assert.equal(legacy.spec!.overhead, undefined);
  });

  describe('with the webhook configuration removed (an emergency bypass), the guard alone', () => {
    let routed: V1Pod;
    before(async () => {
      routed = await stored(podFrom('build-plain'));
      await cluster.removeWebhook();
      await eventually(
        async () => GUARD.test(await refusal(create(podFrom('build-plain'), 'All'))),
        10_000,
        'the bypass to take effect',
      );
    });
    after(async () => cluster.applyDeploy('enforce', cluster.webhookUrl()));

    it('admits a genuinely routed build: what the webhook makes passes the guard', async () => {
      const policy = policyFrom(deployConfigYaml());
      for (const name of ['build-plain', 'build-dind', 'build-buildkit', 'build-rhel6']) {
        const review = fixture(name);
        const outcome = await reviewAdmission(structuredClone(review), { policy });
        assert.ok(outcome.ok);
        const mutated = patchedPod(review.request.object, outcome);
        mutated.metadata!.name = podFrom(name).metadata!.name;
        assert.equal(await refusal(create(mutated, 'All')), '', name);
      }
    });

    // Each attack is otherwise a valid legacy build (no kata runtime), so the guard names the one field.
    const legacy = (change: (p: V1Pod) => void) => (p: V1Pod) => {
      forged('legacy')(p);
      delete p.spec!.runtimeClassName;
      p.spec!.automountServiceAccountToken = false;
      change(p);
    };
    const guarded: [string, (p: V1Pod) => void, RegExp][] = [
      ['an unrouted build', () => {}, /not routed by kata-admission/],
      [
        'a forged kata route without the kata runtime',
        forged('kata'),
        /spec\.runtimeClassName is not its route's/,
      ],
      [
        'a forged legacy route asking for privileged',
        legacy((p) => {
          p.spec!.containers[0]!.securityContext = { privileged: true };
        }),
        /privileged outside/,
      ],
      [
        'a forged legacy route adding SYS_ADMIN',
        legacy((p) => {
          p.spec!.containers[0]!.securityContext = { capabilities: { add: ['SYS_ADMIN'] } };
        }),
        /capability outside/,
      ],
      [
        'a forged legacy route with a hostPath of /',
        legacy((p) => {
          p.spec!.volumes!.push({ name: 'root', hostPath: { path: '/' } });
        }),
        /hostPath volume lies outside/,
      ],
      [
        'a forged legacy route with a keyless Exists toleration',
        legacy((p) => {
          p.spec!.tolerations = [{ operator: 'Exists' }];
        }),
        /tolerations admit another route's pool/,
      ],
      [
        'a forged legacy route with nodeName',
        legacy((p) => {
          p.spec!.nodeName = 'kata-node-1';
        }),
        /spec\.nodeName is set/,
      ],
      [
        'a forged legacy route with hostPID',
        legacy((p) => {
          p.spec!.hostPID = true;
        }),
        /hostPID/,
      ],
      [
        'a forged legacy route with the kata runtime',
        (p) => {
          forged('legacy')(p);
          p.spec!.runtimeClassName = 'kata';
        },
        /spec\.runtimeClassName is not its route's/,
      ],
    ];
    const pss: [string, (p: V1Pod) => void, RegExp][] = [
      [
        'Kata annotations of its own',
        (p) => void (p.metadata!.annotations![KERNEL_PARAMS] = 'init=/bin/sh'),
        /io\.katacontainers/,
      ],
      [
        'seccomp Unconfined',
        (p) => void (p.spec!.securityContext = { seccompProfile: { type: 'Unconfined' } }),
        /seccompProfile/,
      ],
      [
        'a hostPort',
        (p) => void (p.spec!.containers[0]!.ports = [{ containerPort: 80, hostPort: 80 }]),
        /hostPort/,
      ],
      [
        'an unsafe sysctl',
        (p) => void (p.spec!.securityContext = { sysctls: [{ name: 'kernel.msgmax', value: '1' }] }),
        /safe sysctls/,
      ],
      [
        'SELinux spc_t',
        (p) => void (p.spec!.containers[0]!.securityContext = { seLinuxOptions: { type: 'spc_t' } }),
        /seLinuxOptions/,
      ],
      [
        'procMount Unmasked',
        (p) =>
          void (
            (p.spec!.hostUsers = false),
            (p.spec!.containers[0]!.securityContext = { procMount: 'Unmasked' })
          ),
        /procMount/,
      ],
      [
        'AppArmor Unconfined',
        (p) => void (p.spec!.containers[0]!.securityContext = { appArmorProfile: { type: 'Unconfined' } }),
        /AppArmor/,
      ],
      [
        'a privileged dind, legacy having no sandbox',
        (p) =>
          void (
            (p.spec!.containers[0]!.name = 'dind'),
            (p.spec!.containers[0]!.securityContext = { privileged: true })
          ),
        /privileged outside/,
      ],
    ];
    for (const [what, change, message] of pss)
      guarded.push([`a forged legacy route with ${what}`, legacy(change), message]);
    for (const [what, change, message] of guarded) {
      it(`rejects ${what}`, async () => {
        const text = await rejection(create(podFrom('build-plain', change), 'All'));
        assert.match(text, GUARD);
        assert.match(text, message);
      });
    }

    it('rejects a privileged ephemeral container on a routed pod', async () => {
      const text = await rejection(
        cluster.asExecutor.patchNamespacedPodEphemeralcontainers({
          name: routed.metadata!.name!,
          namespace: BUILD_NS,
          body: [
            {
              op: 'add',
              path: '/spec/ephemeralContainers',
              value: [{ name: 'debugger', image: 'busybox', securityContext: { privileged: true } }],
            },
          ],
        }),
      );
      assert.match(text, GUARD);
    });
  });

  it('agrees with the guard on generated pods: what the webhook admits passes the guard, what it refuses never reaches it', async () => {
    const policy = policyFrom(deployConfigYaml());
    const tweak = fc.record({
      labels: fc.constantFrom('keep', 'drop-tier', 'misspelt'),
      route: fc.constantFrom(undefined, 'kata', 'legacy', 'vm'),
      base: fc.constantFrom('build-plain', 'build-dind', 'build-rhel6', 'build-buildkit'),
      privileged: fc.boolean(),
      caps: fc.subarray(['SYS_ADMIN', 'NET_BIND_SERVICE', 'CHOWN', 'NET_ADMIN']),
      toleration: fc.constantFrom(
        undefined,
        { operator: 'Exists' },
        { key: 'dedicated', operator: 'Exists' },
        { key: 'dedicated', operator: 'Equal', value: 'screwdriver-kata', effect: 'NoSchedule' },
      ),
      hostPath: fc.constantFrom(
        undefined,
        '/',
        '/opt/screwdriver/cache',
        '/opt/screwdriver/../etc',
        '/var/run/docker.sock',
      ),
      hostPID: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
      runtimeClass: fc.constantFrom(undefined, 'kata', null),
      automount: fc.constantFrom(undefined, true, false),
      seccomp: fc.constantFrom(undefined, 'Unconfined', 'RuntimeDefault'),
      kata: fc.constantFrom(undefined, 'init=/bin/sh', 'vsyscall=emulate'),
      hostPort: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
      sysctl: fc.constantFrom(undefined, 'net.ipv4.tcp_syncookies', 'kernel.msgmax'),
    });
    const samples = fc.sample(tweak, { numRuns: 200, seed: 20261126 });
    let admitted = 0;
    let refused = 0;
    for (const t of samples) {
      const pod = podFrom(t.base, (p) => {
        if (t.labels === 'drop-tier') delete p.metadata!.labels!.tier;
        if (t.labels === 'misspelt') p.metadata!.labels!.tier = 'build';
        if (t.route) forged(t.route)(p);
        p.spec!.containers[0]!.securityContext = { privileged: t.privileged, capabilities: { add: t.caps } };
        if (t.toleration) p.spec!.tolerations = [...(p.spec!.tolerations ?? []), t.toleration];
        if (t.hostPath) p.spec!.volumes!.push({ name: 'generated', hostPath: { path: t.hostPath } });
        if (t.hostPID) p.spec!.hostPID = true;
        if (t.runtimeClass === null) delete p.spec!.runtimeClassName;
        else if (t.runtimeClass) p.spec!.runtimeClassName = t.runtimeClass;
        if (t.automount === undefined) delete p.spec!.automountServiceAccountToken;
        else p.spec!.automountServiceAccountToken = t.automount;
        if (t.seccomp) p.spec!.securityContext = { seccompProfile: { type: t.seccomp } };
        if (t.sysctl)
          p.spec!.securityContext = { ...p.spec!.securityContext, sysctls: [{ name: t.sysctl, value: '1' }] };
        if (t.kata) p.metadata!.annotations = { ...p.metadata!.annotations, [KERNEL_PARAMS]: t.kata };
        if (t.hostPort) p.spec!.containers[0]!.ports = [{ containerPort: 8080, hostPort: 8080 }];
      });
      const review = {
        ...fixture('build-plain'),
        request: { ...fixture('build-plain').request, object: pod },
      };
      const offline = await reviewAdmission(structuredClone(review), { policy });
      assert.ok(offline.ok);
      const outcome = await create(pod, 'All').then(
        (p) => ({ ok: true as const, pod: p }),
        (e) => ({ ok: false as const, text: errorText(e) }),
      );
      if (!outcome.ok) {
        assert.doesNotMatch(
          outcome.text,
          GUARD,
          `the guard rejected a pod the webhook admitted: ${JSON.stringify(t)}`,
        );
        assert.match(outcome.text, WEBHOOK_REFUSAL, JSON.stringify(t));
        assert.equal(
          offline.review.response.allowed,
          false,
          `refused in the cluster, admitted offline: ${JSON.stringify(t)}`,
        );
        refused++;
        continue;
      }
      assert.equal(offline.review.response.allowed, true, JSON.stringify(t));
      assertRouted(outcome.pod);
      assert.equal(
        outcome.pod.metadata!.annotations![ANNOTATION('route')],
        patchedPod(pod, offline).metadata!.annotations![ANNOTATION('route')],
      );
      admitted++;
    }
    assert.ok(
      admitted > 20 && refused > 20,
      `both outcomes are exercised: ${admitted} admitted, ${refused} refused`,
    );
  });
});
