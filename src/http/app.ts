// The HTTP layer: a strict, boring edge around the admission path. Built without listening, so
// tests drive it with supertest and the server wraps it in node:https.
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { reviewAdmission, type ReviewDeps } from '../admission/review.js';
import { recordAdmission } from '../admission/record.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { HttpError, readBody } from './body.js';
import type { ByteBudget } from './budget.js';

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
  /** Bytes of request bodies that may be in memory at once, across requests. */
  bodyBudget: ByteBudget;
}

function sendJson(res: ServerResponse, status: number, body: string, close = false) {
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...(close && { Connection: 'close' }),
  });
  res.end(body);
}

/** Every error is JSON naming the problem, never an HTML page. */
function sendError(res: ServerResponse, status: number, error: string, close = false) {
  sendJson(res, status, JSON.stringify({ error }), close);
}

const isJson = (contentType: string | undefined) => /^application\/json\s*(;|$)/i.test(contentType ?? '');

/**
 * POST /mutate, the hot route, on node's own request and response: the API server calls it for
 * every build pod, and express's per-request machinery cost more than the admission itself.
 */
async function mutateRoute(req: IncomingMessage, res: ServerResponse, deps: AppDeps): Promise<void> {
  const draining = deps.draining();
  const fail = (status: number, error: string) => sendError(res, status, error, draining || status === 413);
  if (!isJson(req.headers['content-type'])) {
    fail(415, `content type must be application/json, got ${req.headers['content-type'] ?? 'none'}`);
    req.resume();
    return;
  }
  let body: { raw: Buffer; release: () => void };
  try {
    body = await readBody(req, deps.bodyBudget);
  } catch (error) {
    fail(error instanceof HttpError ? error.status : 400, (error as Error).message);
    return;
  }
  try {
    await answerReview(body.raw, res, deps, fail, draining);
  } finally {
    body.release(); // the body is held until the answer is sent
  }
}

async function answerReview(
  raw: Buffer,
  res: ServerResponse,
  deps: AppDeps,
  fail: (status: number, error: string) => void,
  draining: boolean,
): Promise<void> {
  const started = process.hrtime.bigint();
  if (raw.length === 0) return fail(400, 'request body is empty; expected an AdmissionReview');
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    return fail(400, `request body is not valid JSON: ${(error as Error).message}`);
  }
  const outcome = await reviewAdmission(body, deps.reviewDeps());
  recordAdmission(outcome, Number(process.hrtime.bigint() - started) / 1e9, deps.logger, deps.metrics);
  if (!outcome.ok) fail(400, outcome.error);
  else sendJson(res, 200, JSON.stringify(outcome.review), draining);
}

/** The server's request listener: the hot route first, everything else through express. */
export function createHandler(deps: AppDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const app = createApp(deps);
  return (req, res) => {
    if (req.method === 'POST' && (req.url === '/mutate' || req.url?.startsWith('/mutate?'))) {
      mutateRoute(req, res, deps).catch((error: Error) => {
        deps.logger.error({ err: error }, 'request failed');
        if (!res.headersSent) sendError(res, 500, 'internal error', true);
      });
      return;
    }
    app(req, res);
  };
}

function only(method: string) {
  return (req: Request, res: Response) => {
    res.setHeader('Allow', method);
    sendError(res, 405, `method ${req.method} is not allowed on ${req.path}; use ${method}`);
  };
}

function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

  app.use((_req, res, next) => {
    if (deps.draining()) res.setHeader('Connection', 'close');
    next();
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
