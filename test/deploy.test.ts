// deploy/ agrees with itself and with the config it ships (checked without a cluster).
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { manifestText, renderManifests } from '../src/cluster/manifests.js';
import { DEFAULT_CONFIG_YAML } from '../src/config/default.js';
import { policyFrom } from './helpers.js';
import {
  DEPLOY,
  composedManifests,
  deployConfigYaml,
  deployManifests,
  kustomize,
  manifest,
} from './cluster/deploy.js';

describe('deploy/', () => {
  const policy = policyFrom(deployConfigYaml());

  it('is the output of `kata-admission manifests` for the embedded default config (one source of truth)', () => {
    assert.equal(deployConfigYaml(), DEFAULT_CONFIG_YAML);
    for (const [file, content] of Object.entries(
      renderManifests(policyFrom(DEFAULT_CONFIG_YAML), DEFAULT_CONFIG_YAML),
    )) {
      assert.equal(
        readFileSync(join(DEPLOY, 'rendered', file), 'utf8'),
        manifestText(content),
        `deploy/rendered/${file} differs: run \`kata-admission manifests --out deploy/rendered\``,
      );
    }
    assert.deepEqual(
      readdirSync(join(DEPLOY, 'rendered')).sort(),
      [...Object.keys(renderManifests(policy, DEFAULT_CONFIG_YAML)), 'kustomization.yaml'].sort(),
    );
  });

  it('sends the webhook every pod CREATE and ephemeral-container update in the build namespaces, never kube-system or its own', () => {
    const webhook = manifest('MutatingWebhookConfiguration').webhooks[0];
    const names = webhook.namespaceSelector.matchExpressions.find((e: any) => e.operator === 'In').values;
    assert.deepEqual(names, policy.config.namespaces);
    const excluded = webhook.namespaceSelector.matchExpressions.find(
      (e: any) => e.operator === 'NotIn',
    ).values;
    assert.ok(excluded.includes('kube-system') && excluded.includes('kata-admission'));
    assert.equal(
      webhook.objectSelector,
      undefined,
      'labels never decide whether a pod is checked (otherPods: route)',
    );
    assert.deepEqual(
      webhook.rules.map((r: any) => [r.operations, r.resources]),
      [
        [['CREATE'], ['pods']],
        [['UPDATE'], ['pods/ephemeralcontainers']],
      ],
    );
    assert.deepEqual(webhook.admissionReviewVersions, ['v1']);
    assert.equal(webhook.sideEffects, 'None');
    assert.equal(webhook.reinvocationPolicy, 'IfNeeded');
    assert.ok(webhook.timeoutSeconds <= 5, 'well under the API server default of 10 s');
  });

  it('installs without blocking builds, and the enforce overlay fails closed', () => {
    assert.equal(manifest('MutatingWebhookConfiguration').webhooks[0].failurePolicy, 'Ignore');
    assert.deepEqual(manifest('ValidatingAdmissionPolicyBinding').spec.validationActions, ['Warn', 'Audit']);
    assert.equal(
      manifest('MutatingWebhookConfiguration', undefined, 'enforce').webhooks[0].failurePolicy,
      'Fail',
    );
    assert.deepEqual(
      manifest('ValidatingAdmissionPolicyBinding', undefined, 'enforce').spec.validationActions,
      ['Deny'],
    );
    assert.equal(manifest('ValidatingAdmissionPolicy').spec.failurePolicy, 'Fail');
    assert.equal(deployManifests('enforce').length, deployManifests().length);
  });

  it("renders with stock kustomize; examples/overlay is enforce with the user's image and the example config", () => {
    const exampleDir = fileURLToPath(new URL('../examples/overlay/', import.meta.url));
    const exampleConfig = readFileSync(new URL('../examples/config.yaml', import.meta.url), 'utf8');
    for (const [file, content] of Object.entries(renderManifests(policyFrom(exampleConfig), exampleConfig)))
      assert.equal(
        readFileSync(join(exampleDir, 'rendered', file), 'utf8'),
        manifestText(content),
        `examples/overlay/rendered/${file} differs: run \`kata-admission manifests --config examples/config.yaml --out examples/overlay/rendered\``,
      );
    const example = kustomize(exampleDir);
    const enforce = deployManifests('enforce');
    const find = (ms: typeof enforce, kind: string) => ms.find((m) => m.kind === kind)!;
    assert.equal(
      find(example, 'Deployment').spec.template.spec.containers[0].image,
      'registry.example.com/ci/kata-admission:0.1.0',
    );
    assert.equal(find(example, 'ConfigMap').data['config.yaml'], exampleConfig);
    assert.equal(find(example, 'MutatingWebhookConfiguration').webhooks[0].failurePolicy, 'Fail');
    assert.deepEqual(find(example, 'ValidatingAdmissionPolicyBinding').spec.validationActions, ['Deny']);
    // The objects that do not depend on the config are the enforce overlay's.
    const appKinds = kustomize(join(DEPLOY, 'app')).map((m) => m.kind);
    const app = (ms: typeof enforce) => ms.filter((m) => appKinds.includes(m.kind));
    assert.deepEqual(app(example), app(enforce));
  });

  it('guards the same pods as the webhook, and their later UPDATEs', () => {
    const guard = manifest('ValidatingAdmissionPolicy');
    const webhook = manifest('MutatingWebhookConfiguration').webhooks[0];
    assert.deepEqual(guard.spec.matchConstraints.namespaceSelector, webhook.namespaceSelector);
    assert.deepEqual(
      guard.spec.matchConstraints.resourceRules,
      webhook.rules.map(({ scope: _s, ...r }: any) =>
        r.resources[0] === 'pods' ? { ...r, operations: ['CREATE', 'UPDATE'] } : r,
      ),
    );
    assert.equal(guard.spec.matchConstraints.objectSelector, undefined);
  });

  it('narrows both to podSelector only with otherPods: allow', () => {
    const allow = renderManifests(policyFrom('otherPods: allow'), 'otherPods: allow\n');
    const hook = allow['mutatingwebhook.yaml']!.documents[0] as any;
    assert.deepEqual(hook.webhooks[0].objectSelector, policy.config.podSelector);
    assert.deepEqual(
      (allow['guard.yaml']!.documents[0] as any).spec.matchConstraints.objectSelector,
      policy.config.podSelector,
    );
  });

  it("declares the kata RuntimeClass with kata-deploy's overhead and scheduling that agrees with the kata route", () => {
    const runtimeClass = manifest('RuntimeClass', policy.route('kata').runtimeClassName!);
    assert.deepEqual(runtimeClass.scheduling.nodeSelector, policy.route('kata').nodeSelector);
    assert.deepEqual(runtimeClass.scheduling.tolerations, policy.route('kata').addedTolerations);
    // kata-deploy's kata-qemu RuntimeClass: overhead.podFixed memory 320Mi, cpu 250m.
    assert.deepEqual(runtimeClass.overhead.podFixed, { cpu: '250m', memory: '320Mi' });
    const own = renderManifests(
      policyFrom('routes: {kata: {runtimeClassOverhead: {cpu: 500m, memory: 600Mi}}}'),
      '',
    )['runtimeclass.yaml']!.documents as { overhead: unknown }[];
    assert.deepEqual(own[0]!.overhead, { podFixed: { cpu: '500m', memory: '600Mi' } });
  });

  it('grants the base ServiceAccount reading RuntimeClasses, its ImageVerdicts, and what learning needs only; --register is an opt-in component', () => {
    const roles = deployManifests().filter((m) => m.kind === 'ClusterRole' || m.kind === 'Role');
    const byGroup = (a: any, b: any) => JSON.stringify(a).localeCompare(JSON.stringify(b));
    assert.deepEqual(
      roles.flatMap((r) => r.rules).sort(byGroup),
      [
        { apiGroups: ['node.k8s.io'], resources: ['runtimeclasses'], verbs: ['get'] },
        {
          apiGroups: ['kata-admission.io'],
          resources: ['imageverdicts'],
          verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
        },
        { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create'] },
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
      ].sort(byGroup),
    );
    const learning = deployManifests().find((m) => m.kind === 'Role')!;
    assert.equal(learning.metadata.namespace, 'kata-admission', 'the Lease only in its own namespace');
    const register = composedManifests(['overlays/enforce'], ['components/register']);
    assert.ok(
      register.some(
        (m) => m.kind === 'ClusterRole' && m.rules[0].resources[0] === 'mutatingwebhookconfigurations',
      ),
    );
    assert.ok(
      register
        .find((m) => m.kind === 'Deployment')!
        .spec.template.spec.containers[0].args.includes('--register'),
    );
    const certManager = composedManifests(['overlays/enforce'], ['components/cert-manager']);
    assert.equal(
      (
        certManager.find((m) => m.kind === 'MutatingWebhookConfiguration')!.metadata.annotations as Record<
          string,
          string
        >
      )['cert-manager.io/inject-ca-from'],
      'kata-admission/kata-admission-tls',
    );
    assert.equal(
      certManager.find((m) => m.kind === 'Certificate' && m.metadata.name === 'kata-admission-tls')!.spec
        .secretName,
      manifest('Deployment').spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName,
    );
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
    const netpol = manifest('NetworkPolicy');
    assert.deepEqual(netpol.spec.ingress, [{ ports: [{ protocol: 'TCP', port: 8443 }] }]);
  });

  it("opens egress to the ports of the config's registries, mirrors, blob hosts and token realms", () => {
    const egressPorts = (yaml: string) => {
      const rendered = renderManifests(policyFrom(yaml), yaml)['networkpolicy.yaml']!.documents[0] as any;
      return rendered.spec.egress.map((rule: any) => rule.ports?.map((p: any) => p.port) ?? 'any');
    };
    assert.deepEqual(egressPorts('{}'), [
      [53, 53],
      [443, 6443],
    ]);
    const registries = {
      'registry.internal:5000': { insecure: true },
      'plain.internal': { insecure: true },
      'docker.io': {
        mirror: 'mirror.internal:8444',
        blobHosts: ['blobs.internal:9000'],
        tokenRealms: ['https://auth.internal:9443/token'],
      },
    };
    assert.deepEqual(
      egressPorts(`imageInspection: ${JSON.stringify({ enabled: true, registries })}`)[1],
      [80, 443, 5000, 6443, 8444, 9000, 9443],
    );
    assert.deepEqual(egressPorts('imageInspection: {enabled: true, otherRegistries: inspect}')[1], 'any');
  });

  it('lists every manifest in kustomization.yaml', () => {
    const kinds = deployManifests()
      .map((m) => m.kind)
      .sort();
    assert.deepEqual(kinds, [
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'CustomResourceDefinition',
      'Deployment',
      'MutatingWebhookConfiguration',
      'Namespace',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'PriorityClass',
      'Role',
      'RoleBinding',
      'RuntimeClass',
      'Service',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
  });
});
