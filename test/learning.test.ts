// Learning from builds that fail in the sandbox, without a cluster: the signatures over container
// statuses as the kubelet writes them, the route a finding leads to, and its effect on a decision.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1ContainerStatus } from '@kubernetes/client-node';
import { pinnedDigest } from '../src/cluster/learning/controller.js';
import { sandboxFailure } from '../src/cluster/learning/signatures.js';
import { withContent } from '../src/images/content/checks.js';
import { MemoryVerdictStore, storeTimes } from '../src/images/content/store.js';
import { decide } from '../src/policy/decide.js';
import { learnedRoute } from '../src/policy/rules/image-class.js';
import { fixture, policyFrom } from './helpers.js';

const REMEDY =
  'routes: {kata-ia32: {runtimeClassName: kata-ia32}}\nimageInspection: {classRoutes: {32-bit: kata-ia32}}';
const signatures = policyFrom().config.imageInspection.content.learning.signatures;

function terminated(exitCode: number, message: string | undefined, seconds: number): V1ContainerStatus {
  const startedAt = new Date('2026-12-01T10:00:00Z');
  return {
    name: 'build',
    image: 'x',
    imageID: `x@sha256:${'a'.repeat(64)}`,
    ready: false,
    restartCount: 0,
    state: {
      terminated: {
        exitCode,
        ...(message !== undefined && { message }),
        startedAt,
        finishedAt: new Date(startedAt.getTime() + seconds * 1000),
      },
    },
  };
}

describe('learning from builds that fail in the sandbox', () => {
  it('reads the default signatures as Kata reports them, and nothing else', () => {
    const cases: [V1ContainerStatus, string | undefined][] = [
      [
        terminated(126, 'step 3\n/usr/bin/aapt: cannot execute binary file: Exec format error\n', 40),
        '32-bit',
      ],
      [terminated(128, 'failed to load /hello32: exec format error', 0), '32-bit'],
      [terminated(8, undefined, 1), '32-bit'],
      [terminated(8, 'make: *** [all] Error 8', 1), undefined],
      [terminated(139, '', 2), 'legacy-glibc'],
      [terminated(139, '', 600), undefined],
      [terminated(1, 'npm ERR! test failed', 30), undefined],
      [terminated(0, 'exec format error in a log line of a build that passed', 30), undefined],
    ];
    for (const [status, expected] of cases)
      assert.equal(sandboxFailure(status, signatures)?.class, expected, JSON.stringify(status.state));
    assert.equal(
      sandboxFailure(cases[0]![0], signatures)!.evidence,
      '/usr/bin/aapt: cannot execute binary file: Exec format error',
    );
    assert.equal(sandboxFailure(cases[2]![0], signatures)!.evidence, 'exit 8 after 1 s, no message');
    const running = { ...cases[0]![0], state: { running: { startedAt: new Date() } } };
    assert.equal(sandboxFailure(running, signatures), undefined);
  });

  it('moves an image only towards isolation: to a remedy route, never from a sandbox to legacy unless allowed', () => {
    assert.equal(learnedRoute(policyFrom(REMEDY), '32-bit', 'kata'), 'kata-ia32');
    assert.equal(
      learnedRoute(policyFrom(), '32-bit', 'kata'),
      undefined,
      'the fallback route has no sandbox',
    );
    assert.equal(
      learnedRoute(
        policyFrom('imageInspection: {content: {learning: {allowLessIsolated: true}}}'),
        '32-bit',
        'kata',
      ),
      'legacy',
    );
  });

  it("a finding outweighs a scan that found nothing, and the image's next build goes where its class leads", async () => {
    const store = new MemoryVerdictStore(storeTimes(policyFrom().config.imageInspection.content));
    const digest = `sha256:${'b'.repeat(64)}`;
    const finding = {
      class: '32-bit' as const,
      pod: 'sd-build-namespace/beta-1',
      container: 'beta-1',
      route: 'kata',
      evidence: 'exit 8 after 1 s, no message',
      at: Date.now(),
    };
    assert.equal(await store.learn(digest, `r/app@${digest}`, finding), true);
    assert.equal(
      await store.learn(digest, `r/app@${digest}`, finding),
      false,
      'one finding per pod and container',
    );
    const scanned = { class: 'ok' as const, detail: 'content: 0 32-bit ELF files' };
    const facts = withContent(scanned, store.get(digest));
    assert.equal(facts.class, '32-bit');
    assert.match(facts.detail, /^learned: build sd-build-namespace\/beta-1 failed on kata \(exit 8/);
    const pod = fixture('build-plain').request.object;
    const image = pod.spec!.containers[0]!.image!;
    const remedy = decide(pod, policyFrom(REMEDY), new Map([[image, facts]]));
    assert.deepEqual([remedy.route, remedy.rule], ['kata-ia32', 'image-arch']);
    const none = decide(pod, policyFrom(), new Map([[image, facts]]));
    assert.equal(none.route, 'kata', 'no remedy route: it stays, and an operator decides');
  });

  it('knows the digest a container was pinned to, to compare with the one that ran', () => {
    const digest = `sha256:${'c'.repeat(64)}`;
    const pod = fixture('build-plain').request.object;
    const name = pod.spec!.containers[0]!.name;
    assert.equal(pinnedDigest(pod, name), undefined);
    pod.spec!.containers[0]!.image = `r/app:1@${digest}`;
    assert.equal(pinnedDigest(pod, name), digest);
  });
});
