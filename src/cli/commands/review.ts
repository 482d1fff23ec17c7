// `kata-admission review`: answer one AdmissionReview exactly as the server would.
import type { Command } from 'commander';
import { reviewAdmission } from '../../admission/review.js';
import { loadPolicy } from '../../policy/load.js';
import { offlineReviewDeps, type Context } from '../context.js';
import { readDocument, UsageError } from '../input.js';

export function reviewCommand(program: Command, ctx: Context): void {
  program
    .command('review')
    .description('answer one AdmissionReview (JSON or YAML) exactly as the server would')
    .option('--config <file>', 'config file (default: the embedded default config)')
    .argument('[file]', 'AdmissionReview file, or - for standard input', '-')
    .action(async (file: string, options: { config?: string }) => {
      const policy = await loadPolicy(options.config);
      const document = await readDocument(file, ctx.io.stdin);
      if ((document as { kind?: unknown } | null)?.kind === 'Pod') {
        throw new UsageError(
          'review takes an AdmissionReview, got a bare Pod: use `kata-admission explain` for a Pod',
        );
      }
      const outcome = await reviewAdmission(document, await offlineReviewDeps(policy));
      if (!outcome.ok) throw new UsageError(outcome.error);
      ctx.io.stdout.write(JSON.stringify(outcome.review, null, 2) + '\n');
    });
}
