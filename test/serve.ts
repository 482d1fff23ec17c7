// `kata-admission serve` as a child process, as an operator runs it: its output collected, its JSON
// log lines parsed as they arrive, and the port read from its "serving" line.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually } from './https.js';

export const BIN = fileURLToPath(new URL('../bin/kata-admission.js', import.meta.url));

export interface Served {
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: any[];
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  /** Waits for a log line with this message (or the process to exit, which fails); returns the line. */
  logged(msg: string, timeoutMs?: number): Promise<Record<string, any>>;
  /** Waits until it serves and returns its port. */
  port(timeoutMs?: number): Promise<number>;
}

/** Runs `node [nodeArgs] BIN serve args`. */
export function serve(args: string[], options: SpawnOptions & { nodeArgs?: string[] } = {}): Served {
  const { nodeArgs = [], ...spawnOptions } = options;
  return spawnServer(process.execPath, [...nodeArgs, BIN, 'serve', ...args], spawnOptions);
}

/** Runs a server command line (an image's entry point, say) and follows its log. */
export function spawnServer(command: string, argv: string[], options: SpawnOptions = {}): Served {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const logs: any[] = [];
  let text = '';
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    text += chunk.toString();
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) logs.push(JSON.parse(line));
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const logged = async (msg: string, timeoutMs = 20_000) => {
    await eventually(() => logs.some((l) => l.msg === msg) || child.exitCode !== null, timeoutMs, `"${msg}"`);
    assert.equal(child.exitCode, null, text);
    return logs.find((l) => l.msg === msg)!;
  };
  return {
    child,
    logs,
    output: () => text,
    logged,
    port: async (timeoutMs) => (await logged('serving admission reviews', timeoutMs)).port as number,
  };
}
