// Isolation against a hostile submitter, at the admission path: every pod in a build namespace is
// routed or refused, what can be corrected is corrected, what cannot is refused naming the field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { hostPathAllowed } from '../src/kube/paths.js';
import {
  ANNOTATION,
  admit,
  answer,
  fixture,
  patchedPod,
  policyFrom,
  withPod,
  type Review,
} from './helpers.js';

const hostile = (change: (pod: V1Pod) => void, name = 'build-plain') => withPod(fixture(name), change);

describe('pods in a build namespace that podSelector does not match', () => {
  const unlabelled: [string, (pod: V1Pod) => void][] = [
    [
      'without tier',
      (p) => {
        delete p.metadata!.labels!.tier;
      },
    ],
    [
      'with tier: build (misspelt)',
      (p) => {
        p.metadata!.labels!.tier = 'build';
      },
    ],
    [
      'without any labels',
      (p) => {
        delete p.metadata!.labels;
      },
    ],
  ];
  for (const [what, change] of unlabelled) {
    it(`are routed like builds by default: ${what}`, async () => {
      const { pod, response } = await admit(
        hostile((p) => {
          change(p);
          p.spec!.containers[0]!.securityContext = { privileged: true };
        }),
      );
      assert.equal(pod.spec!.runtimeClassName, 'kata');
      assert.equal(pod.spec!.containers[0]!.securityContext!.privileged, false);
      assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
      assert.ok(response.warnings!.some((w) => /otherPods: route/.test(w)));
    });
  }

  it('are refused with otherPods: deny, and let through untouched with otherPods: allow', async () => {
    const review = hostile((p) => {
      p.metadata!.labels!.tier = 'web';
    });
    const denied = await answer(review, policyFrom('otherPods: deny'));
    assert.equal(denied.review.response.allowed, false);
    assert.equal(denied.review.response.status!.code, 403);
    assert.match(denied.review.response.status!.message, /do not match podSelector .*otherPods: deny/);
    const allowed = await answer(review, policyFrom('otherPods: allow'));
    assert.deepEqual(allowed.review.response, { uid: review.request.uid, allowed: true });
  });
});

describe('what the webhook corrects, with a warning', () => {
  it('a keyless Exists toleration on the legacy route (it would admit the kata pool)', async () => {
    const { pod, response } = await admit(
      hostile((p) => {
        p.spec!.tolerations!.push({ operator: 'Exists' });
      }, 'build-rhel6'),
    );
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'legacy');
    assert.ok(!pod.spec!.tolerations!.some((t) => t.operator === 'Exists' && !t.key));
    assert.ok(response.warnings!.some((w) => /toleration \(any key\) Exists removed/.test(w)));
  });

  it('keeps a keyless Exists toleration on kata, whose pool is the only tainted one', async () => {
    const { pod } = await admit(
      hostile((p) => {
        p.spec!.tolerations!.push({ operator: 'Exists' });
      }),
    );
    assert.ok(pod.spec!.tolerations!.some((t) => t.operator === 'Exists' && !t.key));
  });

  it('capabilities beyond the baseline, on every container kind, but not on the privileged sidecars', async () => {
    const { pod, response } = await admit(
      hostile((p) => {
        p.spec!.containers[0]!.securityContext = {
          capabilities: { add: ['SYS_ADMIN', 'NET_BIND_SERVICE', 'CAP_SYS_PTRACE'] },
        };
        p.spec!.initContainers![0]!.securityContext = { capabilities: { add: ['NET_ADMIN'] } };
        p.spec!.containers.find((c) => c.name === 'dind')!.securityContext!.capabilities = {
          add: ['SYS_ADMIN'],
        };
      }, 'build-dind'),
    );
    assert.deepEqual(pod.spec!.containers[0]!.securityContext!.capabilities!.add, ['NET_BIND_SERVICE']);
    assert.deepEqual(pod.spec!.initContainers![0]!.securityContext!.capabilities!.add, []);
    assert.deepEqual(
      pod.spec!.containers.find((c) => c.name === 'dind')!.securityContext!.capabilities!.add,
      ['SYS_ADMIN'],
    );
    assert.ok(response.warnings!.some((w) => /capabilities SYS_ADMIN, CAP_SYS_PTRACE removed/.test(w)));
  });
});

describe('what the webhook refuses, naming the field and the rule', () => {
  const refused: [string, (pod: V1Pod) => void, RegExp][] = [
    [
      'hostPID',
      (p) => {
        p.spec!.hostPID = true;
      },
      /spec\.hostPID: build pods may not share the node's namespaces/,
    ],
    [
      'hostIPC',
      (p) => {
        p.spec!.hostIPC = true;
      },
      /spec\.hostIPC/,
    ],
    [
      'hostNetwork',
      (p) => {
        p.spec!.hostNetwork = true;
      },
      /spec\.hostNetwork/,
    ],
    [
      'nodeName',
      (p) => {
        p.spec!.nodeName = 'kata-node-1';
      },
      /spec\.nodeName: .*"kata-node-1"/,
    ],
    [
      'a hostPath of /',
      (p) => {
        p.spec!.volumes!.push({ name: 'root', hostPath: { path: '/' } });
      },
      /spec\.volumes\[\d+\]\.hostPath\.path: "\/" is outside the \w+ route's hostPathPrefixes \(\/opt\/screwdriver\/\)/,
    ],
    [
      'a hostPath escaping the prefix',
      (p) => {
        p.spec!.volumes!.push({ name: 'up', hostPath: { path: '/opt/screwdriver/../../etc' } });
      },
      /hostPath\.path: "\/opt\/screwdriver\/\.\.\/\.\.\/etc" is outside/,
    ],
  ];
  for (const [what, change, message] of refused) {
    for (const name of ['build-plain', 'build-rhel6']) {
      it(`${what} (${name})`, async () => {
        const { review } = await answer(hostile(change, name));
        assert.equal(review.response.allowed, false);
        assert.equal(review.response.status!.code, 403);
        assert.match(review.response.status!.message, message);
      });
    }
  }

  it('only warns in shadow mode', async () => {
    const outcome = await answer(
      hostile((p) => {
        p.spec!.hostPID = true;
      }),
      policyFrom('mode: shadow'),
    );
    assert.equal(outcome.review.response.allowed, true);
    assert.ok(
      outcome.review.response.warnings!.some((w) =>
        /would be refused in enforce mode: spec\.hostPID/.test(w),
      ),
    );
  });

  it("admits Screwdriver's own hostPaths under /opt/screwdriver/", async () => {
    for (const name of ['build-plain', 'build-dind', 'build-buildkit', 'build-rhel6']) {
      const { response } = await admit(fixture(name));
      assert.equal(response.allowed, true, name);
    }
  });

  it('hostPath prefixes mean folders, not string prefixes', () => {
    const prefixes = ['/opt/screwdriver/'];
    assert.ok(hostPathAllowed('/opt/screwdriver/sdlauncher/stable', prefixes));
    assert.ok(hostPathAllowed('/opt/screwdriver', prefixes));
    for (const path of [
      '/opt/screwdriverx',
      '/opt/screwdriver/../etc',
      '/opt/screwdriver/./x/../..',
      '/opt//screwdriver/x',
      '/',
      '/opt',
    ]) {
      assert.equal(hostPathAllowed(path, prefixes), false, path);
    }
  });
});

/** An ephemeral-containers update as the API server sends it: the whole pod, routed earlier. */
function ephemeralUpdate(route: string | undefined, container: Record<string, unknown>): Review {
  const review = structuredClone(fixture('build-plain'));
  const pod = review.request.object;
  if (route) pod.metadata!.annotations = { ...pod.metadata!.annotations, [ANNOTATION('route')]: route };
  pod.spec!.ephemeralContainers = [{ name: 'debugger', image: 'busybox', ...container }];
  Object.assign(review.request, {
    operation: 'UPDATE',
    subResource: 'ephemeralcontainers',
    oldObject: structuredClone(pod),
  });
  return review;
}

describe('ephemeral containers', () => {
  it("get the route's privileged and capability limits", async () => {
    const review = ephemeralUpdate('kata', {
      securityContext: { privileged: true, capabilities: { add: ['SYS_ADMIN'] } },
    });
    const outcome = await answer(review);
    const pod = patchedPod(review.request.object, outcome);
    assert.deepEqual(pod.spec!.ephemeralContainers![0]!.securityContext, {
      privileged: false,
      capabilities: { add: [] },
    });
    assert.deepEqual(
      pod.spec!.containers,
      review.request.object.spec!.containers,
      'nothing but the ephemeral containers changes',
    );
  });

  it('are refused on a pod the webhook never routed', async () => {
    for (const route of [undefined, 'vm']) {
      const { review } = await answer(ephemeralUpdate(route, {}));
      assert.equal(review.response.allowed, false);
      assert.match(review.response.status!.message, /ephemeral containers on a pod it never routed/);
    }
  });
});
