// The oldest supported Kubernetes minor (docs/install.md: Supported versions), as a smoke subset of
// the end-to-end suite: its own kube-apiserver, etcd and kubectl, deploy/ applied with that
// kubectl, a build routed and stored, and the guard alone refusing an unrouted one.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VersionApi } from '@kubernetes/client-node';
import { BUILD_NS, Cluster, errorText, podFrom } from './cluster/harness.js';
import { stopShared } from './cluster/shared.js';
import { ANNOTATION } from './helpers.js';
import { eventually } from './https.js';

const OLDEST = 'v1.35';

describe(`end to end on Kubernetes ${OLDEST}, the oldest supported`, { timeout: 15 * 60_000 }, () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.install(OLDEST);
    await cluster.serveAndEnforce();
  });
  after(async () => {
    await cluster?.stop();
    await stopShared();
  });

  it(`is a ${OLDEST} API server`, async () => {
    const version = await cluster.cp.admin.makeApiClient(VersionApi).getCode();
    assert.equal(`v${version.major}.${version.minor}`, OLDEST);
  });

  it('stores a build routed to kata, with the route label and annotation', async () => {
    const created = await cluster.createAsExecutor(podFrom('build-dind'));
    const pod = await cluster.asExecutor.readNamespacedPod({
      name: created.metadata!.name!,
      namespace: BUILD_NS,
    });
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.deepEqual(pod.spec!.nodeSelector, { dedicated: 'screwdriver-kata' });
    assert.equal(pod.metadata!.labels![ANNOTATION('route')], 'kata');
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
  });

  it('refuses an unrouted build with the guard alone once the webhook configuration is gone', async () => {
    cluster.kubectl(['delete', 'mutatingwebhookconfiguration', 'kata-admission']);
    let message = '';
    await eventually(
      async () => {
        message = await cluster.createAsExecutor(podFrom('build-plain'), 'All').then(
          () => '',
          (e) => errorText(e),
        );
        return /kata-admission-guard/.test(message);
      },
      20_000,
      'the guard to refuse',
    );
    assert.match(message, /not routed by kata-admission/);
  });
});
