// The Helm chart against the kustomize install, both with the real binaries: for each choice a user
// makes, `helm template` renders the same objects as the kustomize overlay that makes that choice.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { composedManifests, parseManifests, run, tool, type Manifest } from './cluster/deploy.js';
import { BIN } from './serve.js';

const CHART = fileURLToPath(new URL('../charts/kata-admission', import.meta.url));
const EXAMPLE_CONFIG = fileURLToPath(new URL('../examples/config.yaml', import.meta.url));

function helmTemplate(args: string[]): Manifest[] {
  return parseManifests(
    run(tool('helm'), ['template', 'kata-admission', CHART, '-n', 'kata-admission', ...args]),
  );
}

const id = (m: Manifest) => `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`;
const byId = (ms: Manifest[]) => new Map(ms.map((m) => [id(m), m]));

/** The chart leaves the Namespace to kubectl (docs/install.md: Helm); everything else is equal. */
function assertSameObjects(chart: Manifest[], kustomized: Manifest[]) {
  const expected = byId(kustomized.filter((m) => m.kind !== 'Namespace'));
  assert.ok(kustomized.some((m) => m.kind === 'Namespace' && m.metadata.name === 'kata-admission'));
  assert.deepEqual([...byId(chart).keys()].sort(), [...expected.keys()].sort());
  for (const object of chart) assert.deepEqual(object, expected.get(id(object)), id(object));
}

describe('the Helm chart', { timeout: 5 * 60_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kata-admission-chart-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is clean for helm lint --strict', () => {
    const out = run(tool('helm'), ['lint', '--strict', CHART]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/);
  });

  const cases: { name: string; set: string[]; resources: string[]; components: string[] }[] = [
    {
      name: 'the default values: the enforce overlay',
      set: [],
      resources: ['overlays/enforce'],
      components: [],
    },
    {
      name: 'phase=install: the install overlay',
      set: ['phase=install'],
      resources: ['overlays/install'],
      components: [],
    },
    {
      name: 'certManager=true: the cert-manager component',
      set: ['certManager=true'],
      resources: ['overlays/enforce'],
      components: ['components/cert-manager'],
    },
    {
      name: 'register=true: the register component',
      set: ['register=true'],
      resources: ['overlays/enforce'],
      components: ['components/register'],
    },
    {
      name: 'monitoring: deploy/monitoring',
      set: ['monitoring.serviceMonitor=true', 'monitoring.prometheusRule=true'],
      resources: ['overlays/enforce', 'monitoring'],
      components: [],
    },
  ];
  for (const { name, set, resources, components } of cases)
    it(`renders what kustomize renders for ${name}`, () => {
      assertSameObjects(
        helmTemplate(set.flatMap((s) => ['--set', s])),
        composedManifests(resources, components),
      );
    });

  it("renders a user's config from `manifests --helm-values` as the user's overlay renders `manifests --out`", () => {
    const values = join(dir, 'config-values.yaml');
    writeFileSync(
      values,
      execFileSync(process.execPath, [BIN, 'manifests', '--config', EXAMPLE_CONFIG, '--helm-values'], {
        encoding: 'utf8',
      }),
    );
    const rendered = join(dir, 'rendered');
    execFileSync(process.execPath, [BIN, 'manifests', '--config', EXAMPLE_CONFIG, '--out', rendered], {
      stdio: 'pipe',
    });
    const chart = helmTemplate(['-f', values]);
    assertSameObjects(chart, composedManifests(['app', rendered], ['components/enforce']));
    // And it is the example's config, not the default one.
    const configMap = chart.find((m) => m.kind === 'ConfigMap')!;
    assert.match(configMap.data['config.yaml'], /weightage: 25/);
  });

  it('sets the image, replicas and resources from the values', () => {
    const deployment = helmTemplate([
      '--set',
      'image.repository=registry.internal:5000/ci/kata-admission,image.tag=1.2.3,replicas=3',
      '--set',
      'resources.requests.cpu=250m,resources.limits.memory=512Mi',
    ]).find((m) => m.kind === 'Deployment')!;
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container.image, 'registry.internal:5000/ci/kata-admission:1.2.3');
    assert.equal(deployment.spec.replicas, 3);
    assert.deepEqual(container.resources, { requests: { cpu: '250m' }, limits: { memory: '512Mi' } });
  });

  it('refuses values it cannot honour, naming them', () => {
    assert.throws(
      () => helmTemplate(['--set', 'phase=enforced']),
      /phase must be install or enforce, not "enforced"/,
    );
    assert.throws(
      () => helmTemplate(['--set', 'certManager=true,register=true']),
      /certManager and register both manage the caBundle/,
    );
  });
});
