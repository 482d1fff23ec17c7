// The baselines: a bare node:https server that only reads and parses the body and answers allowed,
// or (with `one-label`) a bare mutating webhook that adds one label, the least a mutating webhook
// can do, whose added latency through the API server is the baseline for ours.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, cert, key, mode] = process.argv.slice(2);
const patch =
  mode === 'one-label'
    ? {
        patchType: 'JSONPatch',
        patch: Buffer.from(
          JSON.stringify([{ op: 'add', path: '/metadata/labels/bench-one-label', value: 'yes' }]),
        ).toString('base64'),
      }
    : {};
const server = createServer(
  { cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2' },
  (req, res) => {
    if (req.method === 'GET') return res.end('ok'); // readiness for the harness
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const body = JSON.stringify({
        apiVersion: review.apiVersion,
        kind: 'AdmissionReview',
        response: { uid: review.request.uid, allowed: true, ...patch },
      });
      res
        .writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
        .end(body);
    });
  },
);
server.keepAliveTimeout = 120_000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
