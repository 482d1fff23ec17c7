// Config text -> validated, compiled policy; or every problem at once, each named by its path.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { compilePolicy, type Policy } from './policy.js';
import { DEFAULT_CONFIG_YAML } from '../config/default.js';
import { configSchema } from '../config/schema.js';

export type ConfigResult = { ok: true; policy: Policy } | { ok: false; problems: string[] };

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

export function parseConfig(text: string): ConfigResult {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    return { ok: false, problems: [`not valid YAML: ${(error as Error).message.trimEnd()}`] };
  }
  // A truncated or half-written file must never turn into the embedded default (weightage 100):
  // "all defaults" has to be said explicitly, as `{}`.
  if (document === null || document === undefined) {
    return {
      ok: false,
      problems: ['(top level): the config is empty (or only comments); write {} to mean "all defaults"'],
    };
  }
  const result = configSchema.safeParse(document);
  if (!result.success) {
    return {
      ok: false,
      problems: result.error.issues.map(
        (i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`,
      ),
    };
  }
  return { ok: true, policy: compilePolicy(result.data) };
}

export function defaultPolicy(): Policy {
  const result = parseConfig(DEFAULT_CONFIG_YAML);
  if (!result.ok) throw new Error(`embedded default config is invalid: ${result.problems.join('; ')}`);
  return result.policy;
}

/** The config text and its policy, from a file or the embedded default; throws ConfigError. */
export async function loadConfig(path?: string): Promise<{ text: string; policy: Policy }> {
  if (!path) return { text: DEFAULT_CONFIG_YAML, policy: defaultPolicy() };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [
      `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    ]);
  }
  const result = parseConfig(text);
  if (!result.ok) throw new ConfigError(path, result.problems);
  return { text, policy: result.policy };
}

/** The policy from a config file, or the embedded default without one; throws ConfigError. */
export async function loadPolicy(path?: string): Promise<Policy> {
  return (await loadConfig(path)).policy;
}
