// The `kata-admission` command line. Exit codes: 0 ok, 1 runtime error, 2 usage or invalid input.
import { Command, CommanderError } from 'commander';
import { reviewAdmission } from '../admission/review.js';
import { ConfigError, loadPolicy } from '../config/load.js';
import { explanation, reviewForPod } from './explain.js';
import { readDocument, UsageError } from './input.js';

export interface Io {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

export async function run(argv: string[], io: Io): Promise<number> {
  let exitCode = 0;
  const program = new Command('kata-admission')
    .description('Routes CI build pods into Kata Containers at admission time')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError(false);

  program
    .command('review')
    .description('answer one AdmissionReview (JSON or YAML) exactly as the server would')
    .option('--config <file>', 'config file (default: the embedded default config)')
    .argument('[file]', 'AdmissionReview file, or - for standard input', '-')
    .action(async (file: string, options: { config?: string }) => {
      const policy = await loadPolicy(options.config);
      const outcome = await reviewAdmission(await readDocument(file, io.stdin), { policy });
      if (!outcome.ok) throw new UsageError(outcome.error);
      io.stdout.write(JSON.stringify(outcome.review, null, 2) + '\n');
    });

  program
    .command('explain')
    .description('show the route, the reason and the changes for one pod')
    .option('--config <file>', 'config file (default: the embedded default config)')
    .argument('<pod>', 'Pod (or AdmissionReview) as YAML or JSON, or - for standard input')
    .action(async (file: string, options: { config?: string }) => {
      const policy = await loadPolicy(options.config);
      const outcome = await reviewAdmission(reviewForPod(await readDocument(file, io.stdin), policy), { policy });
      if (!outcome.ok) throw new UsageError(outcome.error);
      io.stdout.write(explanation(outcome));
      if (outcome.summary.denied) exitCode = 2;
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help' ? 0 : 2;
    }
    if (error instanceof UsageError || error instanceof ConfigError) {
      io.stderr.write(`kata-admission: ${error.message}\n`);
      return 2;
    }
    io.stderr.write(`kata-admission: ${(error as Error).message}\n`);
    return 1;
  }
}
