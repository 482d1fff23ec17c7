// deploy/ agrees with itself and with the config it ships (checked without a cluster).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { policyFrom } from './helpers.js';
import { deployConfigYaml, deployManifests, manifest } from './cluster/deploy.js';

describe('deploy/', () => {
  const policy = policyFrom(deployConfigYaml());
  const webhook = manifest('MutatingWebhookConfiguration').webhooks[0];

  it('ships a valid config equal to the embedded default', () => {
    assert.equal(policy.hash, policyFrom().hash);
  });

  it('sends the webhook exactly the pods the config routes, and never kube-system or its own namespace', () => {
    const names = webhook.namespaceSelector.matchExpressions.find((e: any) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'In').values;
    assert.deepEqual(names, policy.config.namespaces);
    const excluded = webhook.namespaceSelector.matchExpressions.find((e: any) => e.operator === 'NotIn').values;
    assert.ok(excluded.includes('kube-system') && excluded.includes('kata-admission'));
    assert.deepEqual(webhook.objectSelector, policy.config.podSelector);
    assert.deepEqual(webhook.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
    assert.deepEqual(webhook.admissionReviewVersions, ['v1']);
    assert.equal(webhook.sideEffects, 'None');
    assert.equal(webhook.matchPolicy, 'Equivalent');
    assert.equal(webhook.reinvocationPolicy, 'IfNeeded');
    assert.ok(webhook.timeoutSeconds <= 5, 'well under the API server default of 10 s');
  });

  it('guards the same pods with the ValidatingAdmissionPolicy', () => {
    const guard = manifest('ValidatingAdmissionPolicy');
    assert.equal(guard.spec.failurePolicy, 'Fail');
    assert.deepEqual(guard.spec.matchConstraints.objectSelector, policy.config.podSelector);
    assert.deepEqual(guard.spec.matchConstraints.namespaceSelector.matchExpressions[0].values, policy.config.namespaces);
    const allowed = guard.spec.variables.find((v: any) => v.name === 'allowedPrivileged').expression;
    for (const route of Object.values(policy.routes)) assert.equal(allowed, JSON.stringify(route.privilegedContainers).replaceAll('"', "'").replaceAll(',', ', '));
    assert.match(JSON.stringify(guard.spec.validations), new RegExp(policy.annotations.route.replaceAll('.', '\\.')));
  });

  it('declares the kata RuntimeClass with scheduling that agrees with the kata route', () => {
    const runtimeClass = manifest('RuntimeClass', policy.routes.kata.runtimeClassName!);
    assert.deepEqual(runtimeClass.scheduling.nodeSelector, policy.routes.kata.nodeSelector);
    assert.deepEqual(runtimeClass.scheduling.tolerations, policy.routes.kata.addedTolerations);
  });

  it('runs the webhook hardened and highly available', () => {
    const deployment = manifest('Deployment');
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    assert.ok(deployment.spec.replicas >= 2);
    assert.ok(pod.affinity.podAntiAffinity);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(typeof pod.securityContext.runAsUser, 'number');
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    assert.equal(container.securityContext.readOnlyRootFilesystem, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
    assert.ok(container.resources.requests.cpu && container.resources.requests.memory);
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.ok(pod.priorityClassName);
    assert.equal(manifest('PodDisruptionBudget').spec.minAvailable, 1);
    assert.ok(container.args.includes('serve'));
  });

  it('lists every manifest in kustomization.yaml', () => {
    const kinds = deployManifests().map((m) => m.kind).sort();
    assert.deepEqual(kinds, ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'Namespace',
      'PodDisruptionBudget', 'PriorityClass', 'RuntimeClass', 'Service', 'ServiceAccount', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
  });
});
