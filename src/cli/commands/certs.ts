// `kata-admission certs`: a CA and a serving certificate for the webhook Service.
import type { Command } from 'commander';
import { isDnsLabel } from '../../kube/labels.js';
import type { Context } from '../context.js';
import { UsageError } from '../input.js';

export function certsCommand(program: Command, ctx: Context): void {
  program
    .command('certs')
    .description('make a CA and a serving certificate for the webhook Service; prints the caBundle')
    .requiredOption('--service <name>', 'the webhook Service name')
    .requiredOption('--namespace <ns>', 'the Service namespace')
    .option('--out <dir>', 'output folder (an existing valid CA there is kept)', 'certs')
    .action(async (options: { service: string; namespace: string; out: string }) => {
      for (const [flag, value] of [
        ['--service', options.service],
        ['--namespace', options.namespace],
      ] as const) {
        if (!isDnsLabel(value))
          throw new UsageError(
            `${flag} "${value}" is not a valid DNS label (lower case letters, digits and "-", at most 63)`,
          );
      }
      const { ensureCerts, serviceDnsNames } = await import('../../tls/certs.js');
      const bundle = await ensureCerts(
        options.out,
        [...serviceDnsNames(options.service, options.namespace), 'localhost'],
        ['127.0.0.1'],
      );
      ctx.io.stdout.write(bundle.caBundle + '\n');
    });
}
