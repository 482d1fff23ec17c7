// deploy/monitoring/: the alerting rules pass promtool's own checks and unit tests (each alert fires
// and stays quiet where it should), and every query names a metric the webhook exports.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createMetrics } from '../src/observability/metrics.js';
import { DEPLOY } from './cluster/deploy.js';

const MONITORING = join(DEPLOY, 'monitoring');
const promtool = (...args: string[]) => spawnSync('promtool', args, { cwd: MONITORING, encoding: 'utf8' });
const yamlOf = (file: string) => parse(readFileSync(join(MONITORING, file), 'utf8'));

/** Metric names the webhook's registry exports, with the suffixes Prometheus adds to histograms. */
async function exportedMetrics(): Promise<Set<string>> {
  const names = (await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name);
  return new Set([...names, ...names.flatMap((n) => ['_bucket', '_count', '_sum'].map((s) => n + s)), 'up']);
}

function queriedMetrics(expr: string): string[] {
  return [...expr.matchAll(/\b(kata_admission_[a-z_]+|up)\b/g)].map((m) => m[1]!);
}

describe('deploy/monitoring', () => {
  it('promtool accepts the rules and their unit tests pass', () => {
    const check = promtool('check', 'rules', 'rules.yaml');
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const tests = promtool('test', 'rules', 'rules.test.yaml');
    assert.equal(tests.status, 0, tests.stdout + tests.stderr);
    assert.match(tests.stdout, /SUCCESS/);
  });

  it('tests every alert both firing and quiet', () => {
    const alerts = yamlOf('rules.yaml').groups.flatMap((g: any) => g.rules.map((r: any) => r.alert));
    const cases = yamlOf('rules.test.yaml').tests.flatMap((t: any) => t.alert_rule_test);
    for (const alert of alerts) {
      const mine = cases.filter((c: any) => c.alertname === alert);
      assert.ok(
        mine.some((c: any) => c.exp_alerts.length > 0),
        `${alert} is never tested firing`,
      );
      assert.ok(
        mine.some((c: any) => c.exp_alerts.length === 0),
        `${alert} is never tested quiet`,
      );
    }
  });

  it('ships the same rules as a PrometheusRule', () => {
    assert.deepEqual(yamlOf('prometheusrule.yaml').spec, yamlOf('rules.yaml'));
  });

  it('queries only metrics the webhook exports, in the rules and the dashboard', async () => {
    const exported = await exportedMetrics();
    const rules = yamlOf('rules.yaml').groups.flatMap((g: any) => g.rules.map((r: any) => r.expr as string));
    const dashboard = JSON.parse(readFileSync(join(MONITORING, 'dashboard.json'), 'utf8'));
    const panels = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr as string));
    for (const expr of [...rules, ...panels]) {
      for (const metric of queriedMetrics(expr))
        assert.ok(exported.has(metric), `${metric} in ${expr} is not exported`);
    }
    assert.ok(
      panels.some((e: string) => e.includes('route, reason')),
      'routes and reasons over time',
    );
    assert.ok(
      panels.some((e: string) => e.includes('image_cache')),
      'image inspection cache',
    );
  });

  it('scrapes the Service port the webhook serves on', () => {
    const monitor = yamlOf('servicemonitor.yaml');
    const service = parse(readFileSync(join(DEPLOY, 'app', 'service.yaml'), 'utf8'));
    assert.deepEqual(monitor.spec.selector.matchLabels, service.metadata.labels);
    assert.equal(monitor.spec.endpoints[0].port, service.spec.ports[0].name);
  });
});
