// The HTTP layer: a strict, boring edge around the admission path. Built without listening, so
// tests drive it with supertest and the server wraps it in node:https.
import express, { type NextFunction, type Request, type Response } from 'express';
import { reviewAdmission, type ReviewDeps } from '../admission/review.js';
import { recordAdmission } from '../observability/admission.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { HttpError, readBody } from './body.js';

export interface Readiness {
  ready: boolean;
  problems: string[];
}

export interface AppDeps {
  /** The review dependencies in force for the next request (the config can change at any time). */
  reviewDeps: () => ReviewDeps;
  readiness: () => Readiness;
  /** True once shutdown started: answer, but close each connection after its request. */
  draining: () => boolean;
  metrics: Metrics;
  logger: Logger;
}

function sendError(res: Response, status: number, error: string) {
  res.status(status).type('application/json').send(JSON.stringify({ error }));
}

function only(method: string) {
  return (req: Request, res: Response) => {
    res.setHeader('Allow', method);
    sendError(res, 405, `method ${req.method} is not allowed on ${req.path}; use ${method}`);
  };
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  app.use((_req, res, next) => {
    if (deps.draining()) res.setHeader('Connection', 'close');
    next();
  });

  app.post('/mutate', async (req, res) => {
    if (!req.is('application/json')) {
      sendError(res, 415, `content type must be application/json, got ${req.headers['content-type'] ?? 'none'}`);
      req.resume();
      return;
    }
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 400;
      if (status === 413) res.setHeader('Connection', 'close');
      sendError(res, status, (error as Error).message);
      return;
    }
    const started = process.hrtime.bigint();
    if (raw.length === 0) {
      sendError(res, 400, 'request body is empty; expected an AdmissionReview');
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (error) {
      sendError(res, 400, `request body is not valid JSON: ${(error as Error).message}`);
      return;
    }
    const outcome = await reviewAdmission(body, deps.reviewDeps());
    recordAdmission(outcome, Number(process.hrtime.bigint() - started) / 1e9, deps.logger, deps.metrics);
    if (!outcome.ok) sendError(res, 400, outcome.error);
    else res.status(200).type('application/json').send(JSON.stringify(outcome.review));
  });
  app.all('/mutate', only('POST'));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.all('/healthz', only('GET'));

  app.get('/readyz', (_req, res) => {
    const readiness = deps.draining() ? { ready: false, problems: ['shutting down'] } : deps.readiness();
    res.status(readiness.ready ? 200 : 503).json(readiness);
  });
  app.all('/readyz', only('GET'));

  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  app.all('/metrics', only('GET'));

  app.use((req, res) => sendError(res, 404, `no route for ${req.method} ${req.path}`));
  app.use((error: Error, _req: Request, res: Response, _next: NextFunction) => {
    deps.logger.error({ err: error }, 'request failed');
    if (!res.headersSent) sendError(res, 500, 'internal error');
  });
  return app;
}
