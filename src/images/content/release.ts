// What an image's release files and C library say: pure parsers over file names and contents.

/** Files that name the distribution, by precedence (Trivy and Syft read the same). */
export const RELEASE_FILES = [
  'etc/os-release',
  'usr/lib/os-release',
  'etc/centos-release',
  'etc/redhat-release',
  'etc/system-release',
  'etc/system-release-cpe',
] as const;

export interface OsRelease {
  /** Lower-case distribution id: centos, rhel, debian, ubuntu, ... */
  id: string;
  version: string;
  /** The file it was read from, and what it said. */
  source: string;
  name: string;
}

const RELEASE_LINE = /^(.*?)\s+release\s+(\d+(?:\.\d+)*)/i;
const NAMES: [RegExp, string][] = [
  [/centos/i, 'centos'],
  [/red hat|rhel/i, 'rhel'],
  [/scientific/i, 'scientific'],
  [/oracle/i, 'ol'],
  [/cloudlinux/i, 'cloudlinux'],
  [/fedora/i, 'fedora'],
  [/amazon/i, 'amzn'],
  [/rocky/i, 'rocky'],
  [/alma/i, 'almalinux'],
];

/** Parses one release file's content; undefined when it says nothing usable. */
export function parseRelease(file: string, text: string): OsRelease | undefined {
  if (file.endsWith('os-release')) {
    const fields = Object.fromEntries(
      text
        .split('\n')
        .map((line) => /^([A-Z_]+)=("?)(.*)\2\s*$/.exec(line.trim()))
        .filter((m) => m !== null)
        .map((m) => [m[1]!, m[3]!]),
    );
    if (!fields.ID) return undefined;
    return {
      id: fields.ID.toLowerCase(),
      version: fields.VERSION_ID ?? '',
      source: file,
      name: fields.PRETTY_NAME ?? fields.NAME ?? fields.ID,
    };
  }
  const firstLine = text.split('\n')[0]!.trim();
  if (file.endsWith('-cpe')) {
    // cpe:/o:redhat:enterprise_linux:6server:ga:server, cpe:/o:centos:linux:6:GA
    const parts = firstLine.replace(/^cpe:\/o:/, '').split(':');
    if (parts.length < 3) return undefined;
    const id = parts[0] === 'redhat' ? 'rhel' : parts[0]!.toLowerCase();
    return { id, version: /^\d+(\.\d+)*/.exec(parts[2]!)?.[0] ?? '', source: file, name: firstLine };
  }
  const match = RELEASE_LINE.exec(firstLine);
  if (!match) return undefined;
  const id = NAMES.find(([pattern]) => pattern.test(match[1]!))?.[1] ?? match[1]!.toLowerCase();
  return { id, version: match[2]!, source: file, name: firstLine };
}

/** Enterprise Linux and its rebuilds, whose major version says how old the userland is. */
const ENTERPRISE_LINUX = new Set(['rhel', 'centos', 'scientific', 'ol', 'cloudlinux', 'rocky', 'almalinux']);

/** The EL major version of a release, when it is an Enterprise Linux. */
export function enterpriseLinuxMajor(release: OsRelease): number | undefined {
  if (!ENTERPRISE_LINUX.has(release.id)) return undefined;
  const major = Number.parseInt(release.version, 10);
  return Number.isNaN(major) ? undefined : major;
}

// The system C library in a standard library folder: lib, lib64, lib32, usr/lib..., and the
// Debian multiarch folders (lib/x86_64-linux-gnu). A sysroot elsewhere is not the system's.
const SYSTEM_LIBC =
  /^(?:usr\/)?lib(?:64|32)?(?:\/[a-z0-9_]+-linux-gnu[a-z0-9_]*)?\/libc(?:-(2\.\d+)\.so|\.so\.6)$/;

/** For a path in the image: 'name' when the name carries the version, 'content' when only the file does. */
export function libcKind(path: string): { version: string } | 'content' | undefined {
  const match = SYSTEM_LIBC.exec(path);
  if (!match) return undefined;
  return match[1] ? { version: match[1] } : 'content';
}

/** The version glibc states in its own binary ("... stable release version 2.36."). */
export const LIBC_VERSION_TEXT = /GNU C Library[^\n\0]{0,120}?version (2\.\d+)/;

/** Compares dotted versions numerically. */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
