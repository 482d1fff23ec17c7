// The class an image's content puts it in: pure, over the facts the layers gave.
import type { ImageVerdict } from '../../policy/decide.js';
import type { ContentFacts } from './merge.js';
import { compareVersions, enterpriseLinuxMajor } from './release.js';

/** glibc 2.15 dropped the need for vsyscall; EL6 ships 2.12 (kata-containers#1263). */
const OLDEST_MODERN_GLIBC = '2.15';
const EVIDENCE = 3;

export function classifyContent(facts: ContentFacts): ImageVerdict {
  const { elf32, glibc, os } = facts;
  if (elf32.length > 0) {
    const shown = elf32.slice(0, EVIDENCE).map((p) => `/${p}`);
    const more = elf32.length - shown.length;
    return {
      class: '32-bit',
      detail: `${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''} 32-bit ELF file${elf32.length > 1 ? 's' : ''}`,
    };
  }
  if (glibc && compareVersions(glibc.version, OLDEST_MODERN_GLIBC) < 0)
    return { class: 'legacy-glibc', detail: `glibc ${glibc.version} (/${glibc.path})` };
  const major = os && enterpriseLinuxMajor(os);
  if (os && major !== undefined && major <= 6)
    return { class: 'legacy-glibc', detail: `${os.name} (/${os.source})` };
  return { class: 'ok', detail: describeContent(facts) };
}

/** One line for people: the OS, the glibc, the 32-bit count. */
function describeContent({ os, glibc, elf32 }: ContentFacts): string {
  return [
    os ? `${os.id} ${os.version}`.trim() : 'no release file',
    glibc ? `glibc ${glibc.version}` : 'no glibc',
    `${elf32.length} 32-bit ELF files`,
  ].join(', ');
}
