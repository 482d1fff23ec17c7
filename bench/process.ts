// Starting the servers a bench measures.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually, httpsRequest } from '../test/https.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * A Node process (`args`: its flags, script and arguments) serving HTTPS on `port`, once it answers
 * /healthz with a certificate `ca` verifies. Its stdout (the admission logs) goes to /dev/null,
 * not through the bench's process.
 */
export async function serving(args: string[], port: number, ca: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
      return httpsRequest(port, ca, { path: '/healthz', method: 'GET' }).then(
        () => true,
        () => false,
      );
    },
    20_000,
    `${args.join(' ')} to serve`,
  );
  return child;
}
