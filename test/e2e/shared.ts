// The shared cluster's promise to the suites after it: what one suite leaves behind (an install of
// deploy/, a pod, an object in a build namespace, a changed executor Role) is gone for the next,
// and the build namespaces' objects are as prepared.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { BUILD_NS, Cluster, podFrom } from '../cluster/harness.js';

const KINDS =
  'namespaces,mutatingwebhookconfigurations,validatingadmissionpolicies,validatingadmissionpolicybindings,customresourcedefinitions,runtimeclasses,priorityclasses,pods,configmaps,secrets,serviceaccounts,roles,rolebindings';
const listing = (cluster: Cluster) => cluster.kubectl(['get', KINDS, '-A', '-o', 'name']).split('\n').sort();
const executorRules = async (cluster: Cluster) =>
  (
    await cluster.cp.admin
      .makeApiClient(RbacAuthorizationV1Api)
      .readNamespacedRole({ name: 'sd-executor', namespace: BUILD_NS })
  ).rules;

describe('the shared cluster', { timeout: 5 * 60_000 }, () => {
  it('gives the next suite the cluster as the first suite found it', async () => {
    let cluster = await Cluster.start();
    const before = listing(cluster);
    const rules = await executorRules(cluster);
    await cluster.applyDeploy('install', 'https://127.0.0.1:9/mutate');
    await cluster.asAdmin.createNamespacedPod({ namespace: BUILD_NS, body: podFrom('build-plain') });
    await cluster.asAdmin.createNamespacedConfigMap({
      namespace: 'team-web',
      body: { metadata: { name: 'left-behind' }, data: { a: 'b' } },
    });
    await cluster.apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'sd-executor', namespace: BUILD_NS },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }],
    });
    const during = listing(cluster);
    for (const name of [
      'namespace/kata-admission',
      'mutatingwebhookconfiguration.admissionregistration.k8s.io/kata-admission',
    ])
      assert.ok(during.includes(name), `${name} was installed`);
    assert.notDeepEqual(await executorRules(cluster), rules);
    await cluster.stop();

    cluster = await Cluster.start();
    try {
      assert.deepEqual(listing(cluster), before);
      assert.deepEqual(await executorRules(cluster), rules);
    } finally {
      await cluster.stop();
    }
  });
});
