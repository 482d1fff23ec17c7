// Process entry point: the only place that touches process.argv, the standard streams and the exit code.
import { hostname } from 'node:os';
import { run } from './cli/main.js';

const code = await run(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: {
    ...(process.env.LOG_LEVEL && { logLevel: process.env.LOG_LEVEL }),
    // Set by the kubelet in every pod; @kubernetes/client-node's loadFromCluster reads the rest.
    inCluster: Boolean(process.env.KUBERNETES_SERVICE_HOST),
    hostname: hostname(), // the pod's name: who claims a content scan
  },
  onShutdownSignal(handler) {
    let called = false;
    const once = () => {
      if (!called) handler();
      called = true;
    };
    process.once('SIGTERM', once);
    process.once('SIGINT', once);
  },
});

// The answer is printed: exit now rather than wait for work whose result nobody reads (an image
// lookup still hanging on a slow registry, a keep-alive socket).
process.stdout.write('', () => process.exit(code));
