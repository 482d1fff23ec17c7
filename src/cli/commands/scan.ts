// `kata-admission scan`: read images' layers now.
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { loadPolicy } from '../../policy/load.js';
import { clusterAccess, type Context } from '../context.js';
import { UsageError } from '../input.js';

export function scanCommand(program: Command, ctx: Context): void {
  program
    .command('scan')
    .description("read images' layers now: print class, route and evidence for each")
    .option('--config <file>', 'config file (registries, caps, ignore globs, class routes)')
    .option('--from <file>', 'also scan the images listed in this file, one a line')
    .option('--json', 'print JSON lines')
    .option('--kubeconfig <file>', 'cluster to --write the verdicts to')
    .option('--write', 'store the verdicts as ImageVerdict objects (needs --kubeconfig)')
    .argument('[image...]', 'image references')
    .action(
      async (
        images: string[],
        options: { config?: string; from?: string; json?: boolean; kubeconfig?: string; write?: boolean },
      ) => {
        const policy = await loadPolicy(options.config);
        const listed = options.from
          ? readFileSync(options.from, 'utf8')
              .split('\n')
              .map((l) => l.trim())
              .filter((l) => l && !l.startsWith('#'))
          : [];
        const all = [...images, ...listed];
        if (all.length === 0) throw new UsageError('name at least one image, or --from FILE');
        if (options.write && !options.kubeconfig) throw new UsageError('--write needs --kubeconfig');
        const write = options.write ? await clusterAccess(options.kubeconfig, false) : undefined;
        const { scanImages, scanText } = await import('../scan.js');
        const lines = await scanImages(all, policy, {
          json: options.json === true,
          ...(write && { write }),
          progress: (line) => ctx.io.stderr.write(`${line}\n`),
        });
        ctx.io.stdout.write(
          options.json ? lines.map((l) => JSON.stringify(l)).join('\n') + '\n' : scanText(lines),
        );
        if (lines.some((l) => l.outcome === 'failed')) ctx.exitCode = 1;
      },
    );
}
