// The `kata-admission` command line: one file per command in commands/. Exit codes: 0 ok,
// 1 runtime error, 2 usage or invalid input.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../policy/load.js';
import { certsCommand } from './commands/certs.js';
import { explainCommand } from './commands/explain.js';
import { manifestsCommand } from './commands/manifests.js';
import { reviewCommand } from './commands/review.js';
import { scanCommand } from './commands/scan.js';
import { serveCommand } from './commands/serve.js';
import type { Context, Io } from './context.js';
import { UsageError } from './input.js';

export type { Io } from './context.js';

/** The package's version, from the package.json beside dist/ (also in the container image). */
function version(): string {
  return (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  ).version;
}

const COMMANDS = [reviewCommand, explainCommand, scanCommand, serveCommand, certsCommand, manifestsCommand];

export async function run(argv: string[], io: Io): Promise<number> {
  const ctx: Context = { io, exitCode: 0 };
  const program = new Command('kata-admission')
    .description('Routes CI build pods into Kata Containers at admission time')
    .version(version(), '--version', 'print the version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError(false);
  for (const command of COMMANDS) command(program, ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode;
  } catch (error) {
    return exitCodeOf(error, io);
  }
}

function exitCodeOf(error: unknown, io: Io): number {
  if (error instanceof CommanderError) {
    const asked = ['commander.helpDisplayed', 'commander.version', 'commander.help'];
    return asked.includes(error.code) ? 0 : 2;
  }
  io.stderr.write(`kata-admission: ${(error as Error).message}\n`);
  return error instanceof UsageError || error instanceof ConfigError ? 2 : 1;
}
