// docs/install.md's steps with the tools operators run, against a real kube-apiserver: a user's
// kustomize overlay (examples/overlay's shape) through install, enforce, a config change, an image
// upgrade, a rollback, the emergency bypass and its undo, with the real kubectl and kustomize;
// then the Helm chart installed, upgraded and rolled back with the real helm. The webhook is served
// from this process; only its clientConfig points here (as envtest does).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, type V1Pod } from '@kubernetes/client-node';
import { DEFAULT_CONFIG_YAML } from '../../src/config/default.js';
import { DEPLOY, run, tool } from '../cluster/deploy.js';
import { BUILD_NS, Cluster, errorText, podFrom } from '../cluster/harness.js';
import { ANNOTATION } from '../helpers.js';
import { eventually } from '../https.js';
import { BIN } from '../serve.js';

const CHART = fileURLToPath(new URL('../../charts/kata-admission', import.meta.url));
const IMAGE = 'registry.example.com/ci/kata-admission';
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => '',
    (e) => errorText(e),
  );
const routeOf = (pod: V1Pod) => pod.metadata!.annotations?.[ANNOTATION('route')];

async function deploymentImage(cluster: Cluster): Promise<string> {
  const apps = cluster.cp.admin.makeApiClient(AppsV1Api);
  const d = await apps.readNamespacedDeployment({ name: 'kata-admission', namespace: 'kata-admission' });
  return d.spec!.template.spec!.containers[0]!.image!;
}

describe('installed with kustomize as docs/install.md says', { timeout: 15 * 60_000 }, () => {
  let cluster: Cluster;
  let repo: string;
  /** The user's install repository: examples/overlay's kustomization with their tag and config. */
  const applyUserOverlay = (tag: string, rendered: string) =>
    cluster.applyOverlay(
      'user-overlay',
      {
        resources: [join(DEPLOY, 'app'), rendered],
        components: [join(DEPLOY, 'components/enforce')],
        images: [{ name: IMAGE, newName: 'registry.internal:5000/ci/kata-admission', newTag: tag }],
      },
      cluster.webhookUrl(),
    );
  const render = (name: string, config: string) => {
    writeFileSync(join(repo, `${name}.yaml`), config);
    const out = join(repo, name);
    execFileSync(process.execPath, [BIN, 'manifests', '--config', join(repo, `${name}.yaml`), '--out', out], {
      stdio: 'pipe',
    });
    return out;
  };
  /** What the kubelet does with the ConfigMap the API server stored: the webhook's mount follows it. */
  const projectStoredConfig = async () => {
    const cm = await cluster.asAdmin.readNamespacedConfigMap({
      name: 'kata-admission-config',
      namespace: 'kata-admission',
    });
    cluster.projectConfig(cm.data!['config.yaml']!);
  };
  const build = async () => {
    const created = await cluster.createAsExecutor(podFrom('build-plain'));
    return cluster.asExecutor.readNamespacedPod({ name: created.metadata!.name!, namespace: BUILD_NS });
  };

  const routeOfBuild = () => build().then(routeOf, () => undefined);

  before(async () => {
    repo = mkdtempSync(join(tmpdir(), 'kata-admission-repo-'));
    cluster = await Cluster.install();
    await cluster.serveAndEnforce();
  });
  after(async () => {
    await cluster?.stop();
    rmSync(repo, { recursive: true, force: true });
  });

  it('upgrades to a new image tag and a new config, then rolls both back, with builds routed throughout', async () => {
    const v1 = render('rendered-v1', DEFAULT_CONFIG_YAML);
    applyUserOverlay('0.1.0', v1);
    assert.equal(await deploymentImage(cluster), 'registry.internal:5000/ci/kata-admission:0.1.0');
    assert.equal(routeOf(await build()), 'kata');

    // The upgrade: a new tag and a config that sends every build to the legacy pool.
    const v2 = render('rendered-v2', DEFAULT_CONFIG_YAML.replace(/^weightage: 100$/m, 'weightage: 0'));
    applyUserOverlay('0.2.0', v2);
    assert.equal(await deploymentImage(cluster), 'registry.internal:5000/ci/kata-admission:0.2.0');
    await projectStoredConfig();
    await eventually(
      async () => (await routeOfBuild()) === 'legacy',
      20_000,
      'the new config to route builds',
    );

    // The rollback: the previous overlay from version control, applied again.
    applyUserOverlay('0.1.0', v1);
    assert.equal(await deploymentImage(cluster), 'registry.internal:5000/ci/kata-admission:0.1.0');
    await projectStoredConfig();
    await eventually(async () => (await routeOfBuild()) === 'kata', 20_000, 'the old config to route builds');
  });

  it('bypasses in an emergency with the documented kubectl commands, and undoes it by applying the overlay', async () => {
    cluster.kubectl(['delete', 'mutatingwebhookconfiguration', 'kata-admission']);
    // The guard alone: an unrouted build is refused, naming why.
    await eventually(
      async () => /not routed by kata-admission/.test(await refusal(build())),
      20_000,
      'the guard to refuse unrouted builds',
    );
    cluster.kubectl([
      'patch',
      'validatingadmissionpolicybinding',
      'kata-admission-guard',
      '--type',
      'merge',
      '-p',
      '{"spec":{"validationActions":["Warn","Audit"]}}',
    ]);
    await eventually(async () => (await refusal(build())) === '', 20_000, 'builds to run unisolated');
    const unisolated = await build();
    assert.equal(routeOf(unisolated), undefined);
    assert.equal(unisolated.spec!.runtimeClassName, undefined);

    // The undo.
    cluster.applyOverlay('undo', { resources: [join(DEPLOY, 'overlays/enforce')] }, cluster.webhookUrl());
    await eventually(async () => (await routeOfBuild()) === 'kata', 20_000, 'builds routed again');
    const binding = JSON.parse(
      cluster.kubectl(['get', 'validatingadmissionpolicybinding', 'kata-admission-guard', '-o', 'json']),
    );
    assert.deepEqual(binding.spec.validationActions, ['Deny']);
  });
});

describe('installed with Helm as docs/install.md says', { timeout: 15 * 60_000 }, () => {
  let cluster: Cluster;
  const helm = (...args: string[]) =>
    run(tool('helm'), [...args, '--kubeconfig', cluster.kubeconfig(), '--namespace', 'kata-admission']);
  const buildRefusal = () => refusal(cluster.createAsExecutor(podFrom('build-plain'), 'All'));
  const failurePolicy = () =>
    JSON.parse(cluster.kubectl(['get', 'mutatingwebhookconfiguration', 'kata-admission', '-o', 'json']))
      .webhooks[0].failurePolicy;

  before(async () => {
    cluster = await Cluster.start();
    cluster.kubectl(['apply', '-f', join(DEPLOY, 'app/namespace.yaml')]);
  });
  after(async () => cluster?.stop());

  it('installs step 1, upgrades to step 2 and to a new image, and rolls back', async () => {
    // Step 1: nothing is blocked while the webhook does not serve yet (no pod runs here).
    helm('install', 'kata-admission', CHART, '--set', 'phase=install');
    assert.equal(failurePolicy(), 'Ignore');
    await eventually(async () => (await buildRefusal()) === '', 20_000, 'builds to be admitted in step 1');

    // Step 2: the webhook fails closed; with no webhook pod answering, builds are refused.
    helm('upgrade', 'kata-admission', CHART, '--reuse-values', '--set', 'phase=enforce');
    assert.equal(failurePolicy(), 'Fail');
    await eventually(async () => /failed calling webhook/.test(await buildRefusal()), 20_000, 'fail closed');

    helm('upgrade', 'kata-admission', CHART, '--reuse-values', '--set', 'image.tag=0.2.0');
    assert.equal(await deploymentImage(cluster), `${IMAGE}:0.2.0`);

    helm('rollback', 'kata-admission', '1');
    assert.equal(await deploymentImage(cluster), `${IMAGE}:0.1.0`);
    assert.equal(failurePolicy(), 'Ignore');
    const history = JSON.parse(helm('history', 'kata-admission', '-o', 'json')) as {
      revision: number;
      status: string;
    }[];
    assert.deepEqual(
      history.map((h) => [h.revision, h.status]),
      [
        [1, 'superseded'],
        [2, 'superseded'],
        [3, 'superseded'],
        [4, 'deployed'],
      ],
    );
    // Every object the chart made is Helm's, in the release.
    const guard = JSON.parse(
      cluster.kubectl(['get', 'validatingadmissionpolicy', 'kata-admission-guard', '-o', 'json']),
    );
    assert.equal(guard.metadata.annotations['meta.helm.sh/release-name'], 'kata-admission');
  });

  it('uninstalls the admission objects with the release', async () => {
    helm('uninstall', 'kata-admission');
    assert.equal(
      cluster.kubectl(['get', 'mutatingwebhookconfiguration,validatingadmissionpolicy', '-o', 'name']).trim(),
      '',
    );
    await eventually(async () => (await buildRefusal()) === '', 20_000, 'builds to run as submitted');
  });
});
