// `kata-admission manifests`: the objects the config implies.
import type { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { helmValuesText, kustomizationText, manifestText, renderManifests } from '../../cluster/manifests.js';
import { loadConfig } from '../../policy/load.js';
import type { Context } from '../context.js';

export function manifestsCommand(program: Command, ctx: Context): void {
  program
    .command('manifests')
    .description(
      'write the ConfigMap, webhook configuration, guard and RuntimeClasses that the config implies',
    )
    .option('--config <file>', 'config file (default: the embedded default config)')
    .option(
      '--out <dir>',
      'write one file per part and a kustomization.yaml into this folder (as in deploy/rendered/)',
    )
    .option('--helm-values', "print them as the Helm chart's `rendered` value (helm -f)")
    .action(async (options: { config?: string; out?: string; helmValues?: boolean }) => {
      const { text, policy } = await loadConfig(options.config);
      const rendered = renderManifests(policy, text);
      if (options.helmValues) {
        ctx.io.stdout.write(helmValuesText(rendered, options.config));
        return;
      }
      if (!options.out) {
        ctx.io.stdout.write(Object.values(rendered).map(manifestText).join('---\n'));
        return;
      }
      await mkdir(options.out, { recursive: true });
      for (const [file, content] of Object.entries(rendered))
        await writeFile(join(options.out, file), manifestText(content));
      await writeFile(join(options.out, 'kustomization.yaml'), kustomizationText(rendered));
      ctx.io.stderr.write(
        `wrote ${Object.keys(rendered).join(', ')} and kustomization.yaml to ${options.out}\n`,
      );
    });
}
