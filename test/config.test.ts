// Config validation: every problem is collected and named by its path, with hints for near misses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG_YAML } from '../src/config/default.js';
import { quantityValue } from '../src/kube/quantity.js';
import { parseConfig } from '../src/policy/load.js';
import { EL6_EXCLUSIONS } from '../src/config/lists.js';
import { policyFrom } from './helpers.js';

function problems(yaml: string): string[] {
  const result = parseConfig(yaml);
  assert.equal(result.ok, false, `config should be rejected:\n${yaml}`);
  return result.ok ? [] : result.problems;
}

function assertProblem(yaml: string, pattern: RegExp) {
  const found = problems(yaml);
  assert.ok(
    found.some((p) => pattern.test(p)),
    `expected a problem matching ${pattern}, got:\n${found.join('\n')}`,
  );
}

describe('config validation', () => {
  it('the embedded default text (the schema defaults written out) parses back to those defaults', () => {
    const embedded = policyFrom(DEFAULT_CONFIG_YAML);
    const empty = policyFrom('{}');
    assert.deepEqual(embedded.config, empty.config);
    assert.equal(embedded.hash, empty.hash);
    assert.deepEqual(
      embedded.config.exclusions,
      EL6_EXCLUSIONS.map((pattern) => ({ pattern, route: 'legacy' })),
    );
    assert.deepEqual(embedded.config.routes.kata!.nodeSelector, { dedicated: 'screwdriver-kata' });
    assert.equal(embedded.config.routes.legacy!.runtimeClassName, null);
  });

  const cases: [string, string, RegExp][] = [
    ['an empty file', '', /^\(top level\): the config is empty/],
    ['a comment-only file', '# weightage: 0\n\n', /^\(top level\): the config is empty/],
    [
      'a misspelt top-level key',
      'weigthage: 50',
      /^\(top level\): unknown key "weigthage" \(did you mean "weightage"\?\)/,
    ],
    [
      'a misspelt nested key',
      'routes: {kata: {nodeSelectr: {a: b}}}',
      /^routes\.kata: unknown key "nodeSelectr" \(did you mean "nodeSelector"\?\)/,
    ],
    ['an unknown key with no near miss', 'colour: blue', /^\(top level\): unknown key "colour"$/],
    ['a wrong type', 'weightage: "50"', /^weightage: .*expected number/],
    ['a weightage above 100', 'weightage: 101', /^weightage: must be from 0 to 100/],
    ['a weightage below 0', 'weightage: -1', /^weightage: must be from 0 to 100/],
    ['a fractional weightage', 'weightage: 12.5', /^weightage: must be a whole number/],
    [
      'an invalid regex',
      'exclusions: [rhel6, "(unclosed"]',
      /^exclusions\.1: invalid regular expression "\(unclosed"/,
    ],
    ['an invalid regex under the alias', 'exclusion: ["[z-a]"]', /^exclusion\.0: invalid regular expression/],
    [
      'both exclusion spellings',
      'exclusions: [a]\nexclusion: [b]',
      /^exclusion: give either "exclusions" or its alias "exclusion", not both/,
    ],
    [
      'an invalid label key in a nodeSelector',
      'routes: {kata: {nodeSelector: {"bad key": x}}}',
      /^routes\.kata\.nodeSelector\.bad key: "bad key" is not a valid label key/,
    ],
    [
      'an invalid label value',
      'routes: {legacy: {nodeSelector: {pool: "no spaces"}}}',
      /^routes\.legacy\.nodeSelector\.pool: "no spaces" is not a valid label value/,
    ],
    [
      'an invalid rollout label key',
      'rolloutKeyLabels: ["-x"]',
      /^rolloutKeyLabels\.0: "-x" is not a valid label key/,
    ],
    [
      'an In expression without values',
      'podSelector: {matchExpressions: [{key: app, operator: In}]}',
      /^podSelector\.matchExpressions\.0\.values: operator In needs at least one value/,
    ],
    [
      'an unknown selector operator',
      'podSelector: {matchExpressions: [{key: app, operator: Has}]}',
      /^podSelector\.matchExpressions\.0\.operator:/,
    ],
    ['an unknown mode', 'mode: audit', /^mode: /],
    ['no namespaces', 'namespaces: []', /^namespaces: list at least one namespace/],
    [
      'an invalid namespace',
      'namespaces: [Builds]',
      /^namespaces\.0: "Builds" is not a valid namespace name/,
    ],
    [
      'an invalid runtime class',
      'routes: {kata: {runtimeClassName: "Kata VM"}}',
      /^routes\.kata\.runtimeClassName: "Kata VM" is not a valid RuntimeClass name/,
    ],
    ['a pin with an unknown route', 'pins: [{selector: {}, route: vm}]', /^pins\.0\.route: /],
    [
      'a bad toleration effect',
      'routes: {kata: {tolerations: [{key: a, effect: Never}]}}',
      /^routes\.kata\.tolerations\.0\.effect: /,
    ],
    ['an invalid annotation prefix', 'annotationPrefix: "Not A Domain"', /^annotationPrefix: /],
    [
      'an inspection budget over the webhook timeout',
      'imageInspection: {timeoutMs: 30000}',
      /^imageInspection\.timeoutMs: must stay under the webhook timeout/,
    ],
    [
      'an invalid legacy-glibc regex',
      'imageInspection: {legacyGlibc: [{history: "(el6"}]}',
      /^imageInspection\.legacyGlibc\.0/,
    ],
    [
      'an unknown registry setting',
      'imageInspection: {registries: {"r.example": {insecur: true}}}',
      /^imageInspection\.registries\.r\.example: unknown key "insecur" \(did you mean "insecure"\?\)/,
    ],
    ['text that is not YAML', 'weightage: [1, 2', /^not valid YAML: /],
    ['a document that is not a mapping', '- a\n- b', /^\(top level\): .*expected object/],
  ];
  for (const [what, yaml, pattern] of cases) {
    it(`names ${what}`, () => assertProblem(yaml, pattern));
  }

  it('collects every problem in one run', () => {
    const found = problems(
      'weightage: 300\nmode: audit\nexclusions: ["("]\nroutes: {kata: {allowPrivilegd: true}}',
    );
    assert.equal(found.length, 4, found.join('\n'));
  });

  it('collects schema, Kata annotation and route reference problems together, not in rounds', () => {
    const found = problems(
      'weightag: 5\nroutes: {kata: {annotations: {io.katacontainers.config.hypervisor.kernel_parms: x}}, vm: {nodeSelector: 3}}\n' +
        'defaultRoute: nope\npins: [{selector: {}, route: vm}]',
    );
    assert.deepEqual(
      found.map((f) => f.split(':')[0]).sort(),
      [
        '(top level)',
        'defaultRoute',
        'routes.kata.annotations.io.katacontainers.config.hypervisor.kernel_parms',
        'routes.vm.nodeSelector',
        'routes.vm.runtimeClassName',
      ],
      found.join('\n'),
    );
  });

  it("fills partial routes from each route's own defaults", () => {
    const { config } = policyFrom(
      'routes: {kata: {runtimeClassName: kata-qemu}, legacy: {nodeSelector: {dedicated: screwdriver}}}',
    );
    assert.equal(config.routes.kata!.runtimeClassName, 'kata-qemu');
    assert.deepEqual(config.routes.kata!.nodeSelector, { dedicated: 'screwdriver-kata' });
    assert.equal(config.routes.legacy!.runtimeClassName, null);
    assert.deepEqual(config.routes.legacy!.privilegedContainers, ['dind', 'buildkitd']);
  });

  it('hashes the settings, not the formatting', () => {
    const a = policyFrom('weightage: 40\nexclusions: [rhel6]');
    const b = policyFrom('exclusions:\n  - rhel6\n# a comment\nweightage: 40\n');
    const c = policyFrom('weightage: 41\nexclusions: [rhel6]');
    assert.equal(a.hash, b.hash);
    assert.notEqual(a.hash, c.hash);
  });
});

describe('the default exclusions', () => {
  const policy = policyFrom('{}');
  const excluded = (image: string) => policy.exclusions.some(({ pattern }) => pattern.test(image));
  // Real references EL6 images go by on Docker Hub, Red Hat's registries and in CI setups.
  const el6 = [
    'centos:6',
    'centos:6.10',
    'centos:centos6',
    'centos:centos6.10',
    'docker.io/library/centos:6.9',
    'centos6-build:latest',
    'myorg/centos-6-base:3',
    'registry.access.redhat.com/rhel6',
    'registry.access.redhat.com/rhel6/rhel:6.10',
    'registry.example/ci/RHEL6-base:1',
    'rhel-6-toolchain',
    'oraclelinux:6',
    'oraclelinux:6.10',
    'scientificlinux/sl:6',
    'sl:6',
    'quay.io/org/app:1.2-el6',
    'ghcr.io/org/el6-gcc:4.4',
    'registry.example/ubi6-minimal',
  ];
  const others = [
    'centos:7',
    'centos:centos7',
    'centos:8',
    'quay.io/centos/centos:stream9',
    'rockylinux:8',
    'almalinux:9',
    'oraclelinux:7',
    'registry.access.redhat.com/ubi8/ubi',
    'rhel7',
    'debian:6',
    'ubuntu:16.04',
    'node:16',
    'python:3.6',
    'golang:1.16',
    'hotel6/app:1',
    'kernel-6.1-builder',
    'model6:latest',
    'centos:60',
    'nginx:1.26',
  ];
  it('catch every EL6 name', () => {
    for (const image of el6) assert.ok(excluded(image), image);
  });
  it('leave later releases and other images alone', () => {
    for (const image of others) assert.equal(excluded(image), false, image);
  });
});

describe('docs/configuration.md', () => {
  it('holds the embedded default and the field reference, generated (`npm run docs` after a change)', async () => {
    const { readFileSync } = await import('node:fs');
    const { CONFIGURATION_MD, configReference, withReference } = await import('./docs/reference.js');
    const markdown = readFileSync(CONFIGURATION_MD, 'utf8');
    assert.equal(
      withReference(markdown, configReference()),
      markdown,
      'docs/configuration.md: run `npm run docs`',
    );
    assert.match(markdown, /\| `imageInspection\.content\.maxUnpackedBytes` \| `17179869184` \|/);
  });
});

describe('quantities', () => {
  it('reads Kubernetes quantities as apimachinery does, and nothing else', () => {
    const cases: [string, number | undefined][] = [
      ['512Mi', 512 * 2 ** 20],
      ['1Gi', 2 ** 30],
      ['0.25Gi', 2 ** 28],
      ['1G', 1e9],
      ['250m', 0.25],
      ['2e3', 2000],
      ['128974848', 128974848],
      ['lots', undefined],
      ['1 Gi', undefined],
      ['1gi', undefined],
      ['', undefined],
    ];
    for (const [text, value] of cases) assert.equal(quantityValue(text), value, text);
  });
});
