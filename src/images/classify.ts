// Classifying an image from what its registry says: pure functions over fetched facts.
import type { ImageVerdict } from '../policy/decide.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageConfigFacts {
  platform: Platform;
  labels: Record<string, string>;
  /** `created_by` of every history entry. */
  history: string[];
}

export interface ImageFactsFromRegistry {
  /** Platforms an index offers (a single-platform image: its own). */
  platforms: Platform[];
  /** The config of the platform that would run (absent when no runnable one was found). */
  config?: ImageConfigFacts;
}

export type LegacyGlibcRule = { label: string; pattern: RegExp } | { history: RegExp };

const BITS_32 = new Set(['386', 'arm', 'mips', 'mipsle', 'ppc', 's390']);

const platformName = (p: Platform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/** The platform a 64-bit Linux node would pull from an index: amd64, else arm64. */
export function runnablePlatform(platforms: Platform[]): Platform | undefined {
  const linux = platforms.filter((p) => p.os === 'linux');
  return linux.find((p) => p.architecture === 'amd64') ?? linux.find((p) => p.architecture === 'arm64');
}

export function classifyImage(
  facts: ImageFactsFromRegistry,
  rules: readonly LegacyGlibcRule[],
): ImageVerdict {
  const linux = facts.platforms.filter((p) => p.os === 'linux');
  if (linux.length > 0 && linux.every((p) => BITS_32.has(p.architecture))) {
    return { class: '32-bit', detail: `only ${linux.map(platformName).join(', ')}` };
  }
  const config = facts.config;
  if (!config)
    return {
      class: 'unknown',
      detail: linux.length === 0 ? 'no linux platform' : 'no config for a runnable platform',
    };
  if (BITS_32.has(config.platform.architecture))
    return { class: '32-bit', detail: platformName(config.platform) };
  for (const rule of rules) {
    if ('label' in rule) {
      const value = config.labels[rule.label];
      if (value !== undefined && rule.pattern.test(value))
        return { class: 'legacy-glibc', detail: `label ${rule.label}=${value}` };
    } else {
      const line = config.history.find((h) => rule.history.test(h));
      if (line !== undefined)
        return {
          class: 'legacy-glibc',
          detail: `history "${line.length > 80 ? `${line.slice(0, 77)}...` : line}"`,
        };
    }
  }
  return { class: 'ok', detail: platformName(config.platform) };
}
