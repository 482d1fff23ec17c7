// Asking registries what images are, and reading their layers (docs/images.md).
import { z } from 'zod';
import { regex, strict, valid } from './fields.js';

const legacyGlibcRule = z.union(
  [strict({ label: z.string().min(1), pattern: regex }), strict({ history: regex })],
  { error: 'a rule is {label: NAME, pattern: REGEX} or {history: REGEX}' },
);

/** host[:port], as a Location header or image reference names it. */
const hostPort = valid((h) => /^[a-z0-9.-]+(:[0-9]{1,5})?$/i.test(h), 'host[:port]');
const httpsUrl = valid((u) => /^https?:\/\/[^/]+\//.test(u), 'URL prefix (scheme://host/...)');

const registrySettings = strict({
  insecure: z.boolean().default(false).describe('Plain http, or https without verifying the certificate.'),
  caFile: z.string().min(1).optional().describe('A PEM file of CAs to trust for this registry.'),
  dockerConfigJson: z
    .string()
    .min(1)
    .optional()
    .describe("A .dockerconfigjson file (a pull Secret mounted) with this registry's credentials."),
  mirror: z
    .string()
    .min(1)
    .optional()
    .describe('host[:port] asked instead of this registry; errors name the mirror.'),
  blobHosts: z
    .array(hostPort)
    .default([])
    .describe(
      'Hosts the registry may redirect blob downloads to (its storage); followed without credentials.',
    ),
  tokenRealms: z
    .array(httpsUrl)
    .default([])
    .describe("Token realms besides the registry's own host that may receive its credentials (https)."),
});

/** A token bucket: `burst` at once, refilled at `perHour`. */
const tokenBucket = (burst: number, perHour: number) =>
  strict({
    burst: z.number().int().min(1).default(burst).describe('New scans at once.'),
    perHour: z.number().int().min(1).default(perHour).describe('New scans per hour, refilled continuously.'),
  }).prefault({});

/** One way a build fails in a sandbox: its message, or its exit code soon after it started. */
const signature = strict({
  message: regex.optional().describe('A regex (case-insensitive) over the termination message.'),
  exitCode: z.number().int().optional().describe('The exit code.'),
  emptyMessage: z.boolean().default(false).describe('Only when the container left no message.'),
  withinSeconds: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe('Only when it ended this soon after it started.'),
  class: z.enum(['32-bit', 'legacy-glibc']).describe('What the failure says the image is.'),
});

/**
 * Kata's failures for images it cannot run: a 32-bit entrypoint exits 8 at once with no message
 * (the agent's errno), a 32-bit tool a step runs says so (bash: 126), an EL6 glibc under
 * vsyscall=none segfaults at once (139).
 */
const DEFAULT_SIGNATURES = [
  { message: 'exec format error|cannot execute binary file', emptyMessage: false, class: '32-bit' },
  { exitCode: 8, emptyMessage: true, withinSeconds: 10, class: '32-bit' },
  { exitCode: 139, emptyMessage: false, withinSeconds: 10, class: 'legacy-glibc' },
] as const;

/** Reading the image's layers (docs/images.md). Needs imageInspection.enabled for the digest. */
const contentScanning = strict({
  enabled: z
    .boolean()
    .default(false)
    .describe('Read the layers of each image (needs imageInspection.enabled for the digest).'),
  workers: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(2)
    .describe('Images scanned at once (each streams one layer at a time).'),
  maxQueued: z
    .number()
    .int()
    .min(1)
    .default(1000)
    .describe('Images waiting for a worker; past this a scan is not queued (the next admission asks again).'),
  maxImageBytes: z
    .number()
    .int()
    .min(1)
    .default(4 * 1024 ** 3)
    .describe('Compressed bytes of all layers; a larger image is not read (its verdict says so).'),
  maxImageSeconds: z.number().int().min(1).max(3600).default(600).describe('A scan stops after this.'),
  learning: strict({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        'With cluster access, watch builds on sandboxed routes and record a finding on the ImageVerdict of an image whose build failed the way an image Kata cannot run fails.',
      ),
    allowLessIsolated: z
      .boolean()
      .default(false)
      .describe(
        'Let a finding send an image to a route without a sandbox (false: only to a remedy route; otherwise it is reported and an operator decides).',
      ),
    signatures: z
      .array(signature)
      .default([...DEFAULT_SIGNATURES])
      .describe(
        "How a failure in the sandbox reads in a terminated container's status; the first match gives the class.",
      ),
  })
    .prefault({})
    .describe('Learning from builds that fail in the sandbox (docs/images.md).'),
  pinDigests: z
    .boolean()
    .default(true)
    .describe(
      'Pin an image written by tag to the digest that was judged (name:tag@sha256:...), so a moved tag cannot run unscanned content.',
    ),
  ignore: z
    .array(z.string().min(1))
    .default(['lib/firmware/**', 'usr/lib/firmware/**', '**/testdata/**'])
    .describe('Globs over paths without the leading "/", of 32-bit ELF files that do not count.'),
  layerCacheBytes: z
    .number()
    .int()
    .min(1024 * 1024)
    .default(64 * 1024 * 1024)
    .describe('Memory for layer summaries, shared by the images built on a layer.'),
  forgetAfterSeconds: z
    .number()
    .int()
    .min(60)
    .default(30 * 86_400)
    .describe('A verdict no admission used for this long is deleted (30 days).'),
  retryFailedSeconds: z
    .number()
    .int()
    .min(1)
    .default(600)
    .describe('A scan the registry failed is tried again after this, doubling with each failure.'),
  failedForgetAfterSeconds: z
    .number()
    .int()
    .min(60)
    .default(6 * 3600)
    .describe('A verdict whose scan failed (nothing was learned) is deleted after this (6 hours).'),
  otherRegistries: z
    .enum(['skip', 'scan'])
    .default('skip')
    .describe('Registries not named in imageInspection.registries: never read (skip), or read (scan).'),
  maxUnpackedBytes: z
    .number()
    .int()
    .min(1)
    .default(16 * 1024 ** 3)
    .describe('Expanded bytes of all layers read; past this the scan stops.'),
  maxEntriesPerLayer: z
    .number()
    .int()
    .min(1)
    .default(1_000_000)
    .describe('Tar entries per layer; past this the scan stops (as it does for a path over 4096 bytes).'),
  maxElf32PerLayer: z
    .number()
    .int()
    .min(1)
    .default(10_000)
    .describe('32-bit ELF paths kept per layer; past this the scan stops.'),
  maxWhiteoutsPerLayer: z
    .number()
    .int()
    .min(1)
    .default(100_000)
    .describe('Whiteouts per layer; past this the scan stops.'),
  scanRate: strict({
    perUser: tokenBucket(100, 1000).describe('Per requesting user.'),
    perNamespace: tokenBucket(200, 2000).describe('Per namespace.'),
  })
    .prefault({})
    .describe(
      'New scans one requesting user, and one namespace, may cause (token buckets); admissions past it use config facts.',
    ),
});

export const imageInspection = strict({
  enabled: z
    .boolean()
    .default(false)
    .describe('Ask the registry what each image is (rule 3, docs/images.md).'),
  timeoutMs: z
    .number()
    .int()
    .min(50, 'must be at least 50')
    .max(25_000, 'must stay under the webhook timeout (at most 25000)')
    .default(1500)
    .describe('Budget for all registry lookups of one admission, in milliseconds.'),
  cacheTtlSeconds: z
    .number()
    .int()
    .min(0)
    .default(3600)
    .describe('How long a verdict is cached, keyed by digest.'),
  negativeCacheTtlSeconds: z
    .number()
    .int()
    .min(0)
    .default(60)
    .describe('How long a failed lookup is remembered per image.'),
  maxEntries: z.number().int().min(1).default(10_000).describe('LRU bound of each cache.'),
  onUnknown: z
    .string()
    .min(1)
    .default('kata')
    .describe(
      'The route of an image whose class is unknown; the default route means "treat as compatible" (weightage still applies).',
    ),
  classRoutes: z
    .partialRecord(z.enum(['32-bit', 'legacy-glibc']), z.string().min(1))
    .default({})
    .describe('Image class (32-bit, legacy-glibc) -> route; a class not named goes to fallbackRoute.'),
  legacyGlibc: z
    .array(legacyGlibcRule)
    .default([
      { label: 'org.opencontainers.image.base.name', pattern: 'centos:6|rhel-?6|el6' },
      { history: 'centos-release-6|redhat-release-server-6' },
    ])
    .describe(
      "Rules that mark an image legacy-glibc: {label, pattern} over a label's value or {history} over history created_by lines (regexes).",
    ),
  registries: z
    .record(z.string(), registrySettings)
    .default({})
    .describe('host[:port] -> how to reach that registry.'),
  otherRegistries: z
    .enum(['skip', 'inspect'])
    .default('skip')
    .describe(
      'Registries not named in registries: never asked (skip: the image is unknown), or asked (inspect).',
    ),
  content: contentScanning.prefault({}).describe('Reading the layers (docs/images.md).'),
});
