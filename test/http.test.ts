// The HTTP edge through supertest: every response shape and every error code, and the metrics.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { createHandler, type Readiness } from '../src/http/app.js';
import { MAX_BODY_BYTES } from '../src/http/body.js';
import { ByteBudget } from '../src/http/budget.js';
import { BODY_BUDGET_BYTES } from '../src/server/https.js';
import { createLogger } from '../src/observability/logger.js';
import { createMetrics } from '../src/observability/metrics.js';
import { ANNOTATION, fixture, podFromResponse, policyFrom, withPod } from './helpers.js';
import { parsePrometheus } from './prometheus.js';

function testApp(options: { readiness?: Readiness; draining?: boolean } = {}) {
  const metrics = createMetrics();
  const policy = policyFrom();
  const app = createHandler({
    reviewDeps: () => ({ policy }),
    readiness: () => options.readiness ?? { ready: true, problems: [] },
    draining: () => options.draining ?? false,
    metrics,
    logger: createLogger('silent'),
    bodyBudget: new ByteBudget(BODY_BUDGET_BYTES),
  });
  return { app, metrics };
}

const post = (app: ReturnType<typeof testApp>['app'], body: unknown, type = 'application/json') =>
  request(app)
    .post('/mutate')
    .set('Content-Type', type)
    .send(typeof body === 'string' ? body : JSON.stringify(body));

describe('POST /mutate', () => {
  it('answers an executor pod with a patch that routes it to kata', async () => {
    const { app } = testApp();
    const review = fixture('build-dind');
    const res = await post(app, review)
      .expect(200)
      .expect('Content-Type', /application\/json/);
    assert.equal(res.body.apiVersion, 'admission.k8s.io/v1');
    assert.equal(res.body.response.uid, review.request.uid);
    const pod = podFromResponse(review.request.object, res.body);
    assert.equal(pod.spec!.runtimeClassName, 'kata');
    assert.equal(pod.metadata!.annotations![ANNOTATION('route')], 'kata');
    assert.ok(res.body.response.warnings.length > 0);
    assert.equal(res.body.response.auditAnnotations.route, 'kata');
  });

  it('answers v1beta1 in v1beta1, and a non-build pod without a patch', async () => {
    const { app } = testApp();
    const beta = await post(app, {
      ...fixture('build-plain'),
      apiVersion: 'admission.k8s.io/v1beta1',
    }).expect(200);
    assert.equal(beta.body.apiVersion, 'admission.k8s.io/v1beta1');
    const other = structuredClone(fixture('build-plain'));
    other.request.namespace = 'default';
    const res = await post(app, other).expect(200);
    assert.deepEqual(res.body.response, { uid: other.request.uid, allowed: true });
  });

  it('refuses a build pod it cannot route with allowed: false', async () => {
    const { app } = testApp();
    const review = withPod(fixture('build-plain'), (pod) => {
      pod.spec!.containers = [];
    });
    const res = await post(app, review).expect(200);
    assert.equal(res.body.response.allowed, false);
    assert.match(res.body.response.status.message, /spec\.containers/);
  });

  const badRequests: [string, () => request.Test, number, RegExp][] = [
    ['a body that is not JSON', () => post(testApp().app, '{"apiVersion": '), 400, /not valid JSON/],
    ['an empty body', () => post(testApp().app, ''), 400, /empty/],
    [
      'JSON that is not an AdmissionReview',
      () => post(testApp().app, { kind: 'Pod' }),
      400,
      /not a valid AdmissionReview/,
    ],
    [
      'an AdmissionReview without request',
      () => post(testApp().app, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }),
      400,
      /no request/,
    ],
    [
      'a review without request.uid',
      () => {
        const review = structuredClone(fixture('build-plain')) as unknown as {
          request: Record<string, unknown>;
        };
        delete review.request.uid;
        return post(testApp().app, review);
      },
      400,
      /request\.uid is missing/,
    ],
    ['a JSON array', () => post(testApp().app, '[]'), 400, /not a JSON object/],
    [
      'the wrong content type',
      () => post(testApp().app, JSON.stringify(fixture('build-plain')), 'text/plain'),
      415,
      /content type must be application\/json/,
    ],
    ['no content type', () => request(testApp().app).post('/mutate'), 415, /content type/],
    [
      'a body over the limit',
      () => post(testApp().app, 'x'.repeat(MAX_BODY_BYTES + 1)),
      413,
      /exceeds the limit/,
    ],
    ['an unknown path', () => request(testApp().app).get('/admit'), 404, /no route for GET \/admit/],
    ['GET /mutate', () => request(testApp().app).get('/mutate'), 405, /use POST/],
    ['DELETE /healthz', () => request(testApp().app).delete('/healthz'), 405, /use GET/],
  ];
  for (const [what, send, status, message] of badRequests) {
    it(`answers ${what} with ${status} and a JSON error`, async () => {
      const res = await send()
        .expect(status)
        .expect('Content-Type', /application\/json/);
      assert.match(res.body.error, message);
    });
  }

  it('cuts off a chunked body over the limit without reading it all', async () => {
    const { app } = testApp();
    const req = request(app).post('/mutate').set('Content-Type', 'application/json');
    // Writes with no Content-Length: the limit trips while streaming.
    const chunk = Buffer.alloc(MAX_BODY_BYTES / 2, 0x20);
    req.write(chunk);
    req.write(chunk);
    req.write(chunk);
    const res = await req.ok(() => true);
    assert.equal(res.status, 413);
    assert.match(res.body.error, /exceeds the limit/);
  });
});

describe('health, readiness and metrics', () => {
  it('reports alive and ready', async () => {
    const { app } = testApp();
    assert.deepEqual((await request(app).get('/healthz').expect(200)).body, { status: 'ok' });
    assert.deepEqual((await request(app).get('/readyz').expect(200)).body, { ready: true, problems: [] });
  });

  it('is not ready when a check fails, nor while draining, and then closes connections', async () => {
    const failing = testApp({ readiness: { ready: false, problems: ['serving certificate expired'] } }).app;
    assert.deepEqual((await request(failing).get('/readyz').expect(503)).body.problems, [
      'serving certificate expired',
    ]);
    const draining = testApp({ draining: true }).app;
    const res = await request(draining).get('/readyz').expect(503).expect('Connection', 'close');
    assert.deepEqual(res.body.problems, ['shutting down']);
    await post(draining, fixture('build-plain')).expect(200).expect('Connection', 'close');
  });

  it('exposes Prometheus text that counts what was sent', async () => {
    const { app } = testApp();
    await post(app, fixture('build-plain')).expect(200);
    await post(app, fixture('build-rhel6')).expect(200);
    await post(app, fixture('build-rhel6')).expect(200);
    await post(app, { kind: 'Pod' }).expect(400);
    const res = await request(app)
      .get('/metrics')
      .expect(200)
      .expect('Content-Type', /text\/plain/);
    const samples = parsePrometheus(res.text);
    const count = (labels: Record<string, string>) =>
      samples.find(
        (s) =>
          s.name === 'kata_admission_requests_total' &&
          Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      )?.value;
    assert.equal(count({ route: 'kata', reason: 'default', result: 'mutated' }), 1);
    assert.equal(count({ route: 'legacy', reason: 'excluded-image', result: 'mutated' }), 2);
    assert.equal(count({ result: 'invalid' }), 1);
    const observed = samples.find(
      (s) => s.name === 'kata_admission_duration_seconds_count' && s.labels.result === 'mutated',
    );
    assert.equal(observed?.value, 3);
    assert.ok(
      samples.some((s) => s.name === 'kata_admission_process_resident_memory_bytes'),
      'process metrics are exported',
    );
  });
});

describe('the body budget', () => {
  it('holds requests until their bytes fit, first come first served, and never loses a release', async () => {
    const budget = new ByteBudget(100);
    const order: string[] = [];
    const a = await budget.acquire(60);
    const b = budget.acquire(60).then((release) => {
      order.push('b');
      return release;
    });
    const c = budget.acquire(10).then((release) => {
      order.push('c');
      return release;
    });
    await Promise.resolve();
    assert.deepEqual(order, [], 'c waits behind b even though it would fit');
    a();
    a(); // a second release gives nothing back twice
    (await b)();
    (await c)();
    assert.deepEqual(order, ['b', 'c']);
    assert.equal(budget.inUse, 0);
    const huge = await budget.acquire(1000);
    assert.equal(budget.inUse, 100, 'a request larger than the budget takes all of it, alone');
    huge();
  });
});
