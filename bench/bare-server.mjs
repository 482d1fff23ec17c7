// The baselines: a bare node:https server that only reads and parses the body and answers allowed;
// with `one-label`, a bare mutating webhook that adds one label, the least a mutating webhook can
// do; with `replay <port> <namespace> <ca>`, a bare server that answers every review with the
// answer kata-admission (on <port>, verified with <ca>) gave the first one, asked as if from
// <namespace>: the API server then does all the work of our patch, without our webhook's time.
import { readFileSync } from 'node:fs';
import { createServer, request } from 'node:https';

const [port, cert, key, mode, upstreamPort, upstreamNamespace, upstreamCa] = process.argv.slice(2);
const onePatch = {
  patchType: 'JSONPatch',
  patch: Buffer.from(
    JSON.stringify([{ op: 'add', path: '/metadata/labels/bench-one-label', value: 'yes' }]),
  ).toString('base64'),
};
// The bare modes answer synchronously; only the replay waits (once) for kata-admission's answer.
let answer = mode === 'one-label' ? onePatch : mode === 'replay' ? undefined : {};
let pending;

/** kata-admission's answer to `review` asked from the namespace it routes, without its uid. */
function upstreamAnswer(review) {
  const body = JSON.stringify({ ...review, request: { ...review.request, namespace: upstreamNamespace } });
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port: Number(upstreamPort), path: '/mutate', method: 'POST' };
    const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
    const req = request(
      { ...options, headers, ca: readFileSync(upstreamCa), servername: 'localhost' },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const { uid: _uid, ...rest } = JSON.parse(Buffer.concat(chunks).toString('utf8')).response;
          resolve(rest);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function send(res, review, answer) {
  const body = JSON.stringify({
    apiVersion: review.apiVersion,
    kind: 'AdmissionReview',
    response: { uid: review.request.uid, allowed: true, ...answer },
  });
  res
    .writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
    .end(body);
}

const server = createServer(
  { cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2' },
  (req, res) => {
    if (req.method === 'GET') return res.end('ok'); // readiness for the harness
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (answer) return send(res, review, answer);
      pending ??= upstreamAnswer(review).then((a) => (answer = a));
      pending.then((a) => send(res, review, a));
    });
  },
);
server.keepAliveTimeout = 120_000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
