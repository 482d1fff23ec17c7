// The config file's schema (docs/configuration.md). Every field has a default, every error names its path.
import { z } from 'zod';
import { isDnsLabel, isDnsSubdomain, isLabelKey, isLabelValue } from '../kube/labels.js';
import { isObject } from '../kube/json.js';
import { isPlainPath } from '../kube/paths.js';
import { nearestKey } from './suggest.js';
import { crossChecks } from './checks.js';
import { BASELINE_CAPABILITIES, EL6_EXCLUSIONS, KATA_ANNOTATIONS } from './lists.js';

/** A strict object whose unknown keys are reported with a "did you mean" hint. */
function strict<Shape extends z.ZodRawShape>(shape: Shape) {
  const known = Object.keys(shape);
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code !== 'unrecognized_keys') return undefined;
      return issue.keys
        .map((key) => {
          const hint = nearestKey(key, known);
          return `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}`;
        })
        .join('; ');
    },
  });
}

/** A string checked by `test`; the message quotes the value, so the user sees what was wrong. */
function valid(test: (value: string) => boolean, what: string) {
  return z.string().superRefine((value, ctx) => {
    if (!test(value)) ctx.addIssue({ code: 'custom', message: `"${value}" is not a valid ${what}` });
  });
}

const labelKey = valid(isLabelKey, 'label key');

/** A map of label keys to label values, each checked so the error names the key. */
const labelMap = z.record(z.string(), z.string()).superRefine((map, ctx) => {
  for (const [key, value] of Object.entries(map)) {
    if (!isLabelKey(key))
      ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is not a valid label key` });
    else if (!isLabelValue(value))
      ctx.addIssue({ code: 'custom', path: [key], message: `"${value}" is not a valid label value` });
  }
});

const annotationMap = z.record(z.string(), z.string()).superRefine((map, ctx) => {
  for (const key of Object.keys(map)) {
    if (!isLabelKey(key))
      ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is not a valid annotation key` });
  }
});

const labelSelector = strict({
  matchLabels: labelMap.optional(),
  matchExpressions: z
    .array(
      strict({
        key: labelKey,
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(valid(isLabelValue, 'label value')).optional(),
      }).superRefine((req, ctx) => {
        const needsValues = req.operator === 'In' || req.operator === 'NotIn';
        const count = req.values?.length ?? 0;
        if (needsValues && count === 0)
          ctx.addIssue({
            code: 'custom',
            path: ['values'],
            message: `operator ${req.operator} needs at least one value`,
          });
        if (!needsValues && count > 0)
          ctx.addIssue({
            code: 'custom',
            path: ['values'],
            message: `operator ${req.operator} takes no values`,
          });
      }),
    )
    .optional(),
});

const toleration = strict({
  key: labelKey.optional(),
  operator: z.enum(['Equal', 'Exists']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.int().optional(),
});

const regex = z.string().superRefine((pattern, ctx) => {
  try {
    new RegExp(pattern, 'i');
  } catch (error) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid regular expression "${pattern}": ${(error as Error).message}`,
    });
  }
});

const capability = valid(
  (c) => /^[A-Z][A-Z0-9_]*$/.test(c) && c !== 'ALL',
  'capability name (upper case, without CAP_, never ALL)',
);

/** An absolute path ending in "/", without "." or ".." segments, so "starts with" means "inside". */
const hostPathPrefix = valid(
  (p) => p.startsWith('/') && p.endsWith('/') && isPlainPath(p),
  'hostPath prefix (an absolute folder path ending in "/", e.g. /opt/screwdriver/)',
);

const routeAnnotations = annotationMap.superRefine((map, ctx) => {
  for (const key of Object.keys(map)) {
    if (!key.startsWith('io.katacontainers.') || (KATA_ANNOTATIONS as readonly string[]).includes(key))
      continue;
    const hint = nearestKey(key, KATA_ANNOTATIONS);
    ctx.addIssue({
      code: 'custom',
      path: [key],
      message: `"${key}" is not a Kata per-pod annotation${hint ? ` (did you mean "${hint}"?)` : ''}`,
    });
  }
});

interface RouteDefaults {
  runtimeClassName?: string | null;
  nodeSelector: Record<string, string>;
}

/** A route's settings; a route other than kata and legacy must say its runtimeClassName (null: the cluster default). */
function routeSchema(defaults: RouteDefaults) {
  const runtimeClassName = valid(isDnsSubdomain, 'RuntimeClass name').nullable();
  return strict({
    runtimeClassName: runtimeClassName
      .default(defaults.runtimeClassName ?? null)
      .describe(
        "The RuntimeClass of the route's pods; null: the cluster default runtime. A route other than kata and legacy must give it.",
      ),
    nodeSelector: labelMap
      .default(defaults.nodeSelector)
      .describe("The route's node pool: set on every pod routed here (kata: dedicated=screwdriver-kata)."),
    tolerateNodeSelectorTaints: z
      .boolean()
      .default(true)
      .describe(
        'Add a toleration {key, operator: Equal, value, effect: NoSchedule} for each nodeSelector pair.',
      ),
    preferredNodeSelectors: labelMap
      .default({})
      .describe('Labels of preferred nodes: one preferred node-affinity term, weight 100.'),
    tolerations: z.array(toleration).default([]).describe('Tolerations added as written.'),
    annotations: routeAnnotations
      .default({})
      .describe(
        "Annotations added to the pod; the io.katacontainers.* ones are exactly the pod's Kata annotations (a submitter's are removed).",
      ),
    allowPrivileged: z
      .boolean()
      .default(false)
      .describe('Any container may be privileged (on a sandbox, or with allowRootOnNode).'),
    privilegedContainers: z
      .array(z.string().min(1))
      .default(['dind', 'buildkitd'])
      .describe("Regular containers that may keep privileged: true and any capability (Screwdriver's dind)."),
    privilegedInitContainers: z
      .array(z.string().min(1))
      .default([])
      .describe('Init containers that may keep privileged: true.'),
    privilegedEphemeralContainers: z
      .array(z.string().min(1))
      .default([])
      .describe('Ephemeral containers that may keep privileged: true.'),
    sandboxed: z
      .boolean()
      .optional()
      .describe(
        'Whether the runtime is a sandbox (a VM); unset: whether the route names a runtimeClassName.',
      ),
    allowRootOnNode: z
      .boolean()
      .default(false)
      .describe(
        'Without a sandbox a privileged container is root on the node: allowPrivileged and the privileged lists apply on such a route only with true.',
      ),
    allowedCapabilities: z
      .array(capability)
      .default([...BASELINE_CAPABILITIES])
      .describe('Capabilities other containers may add (default: the Pod Security Standards baseline list).'),
    hostPathPrefixes: z
      .array(hostPathPrefix)
      .default(['/opt/screwdriver/'])
      .describe(
        'hostPath volumes only inside these folders (absolute, ending in "/"): Kata shares hostPaths into the guest.',
      ),
  });
}

/** A new route's settings (kata and legacy default their runtime and pool), for the config reference. */
export const routeSettingsSchema = routeSchema({ nodeSelector: {} });

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

const imageInspection = strict({
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

const pin = strict({
  selector: labelSelector.describe('A label selector over the pod.'),
  route: z.string().min(1).describe('The route of the pods it selects.'),
  reason: z.string().default('').describe("Said in the decision's detail."),
});

/** An exclusion is a regex (to the fallback route, as Screwdriver's executor-router has it) or {pattern, route}. */
const exclusion = z.union([regex, strict({ pattern: regex, route: z.string().min(1) })], {
  error: 'an exclusion is a regular expression or {pattern: REGEX, route: NAME}',
});

const ROUTE_DEFAULTS: Record<string, RouteDefaults> = {
  kata: { runtimeClassName: 'kata', nodeSelector: { dedicated: 'screwdriver-kata' } },
  legacy: { runtimeClassName: null, nodeSelector: {} },
};

/** Any number of named routes; kata and legacy always exist (filled from their defaults), so two-route configs keep their meaning. */
const routes = z.record(z.string(), z.unknown()).transform((given, ctx) => {
  const out: Record<string, z.output<ReturnType<typeof routeSchema>>> = {};
  for (const name of [...new Set([...Object.keys(ROUTE_DEFAULTS), ...Object.keys(given)])]) {
    if (!isDnsLabel(name))
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `"${name}" is not a valid route name (a DNS label)`,
      });
    const settings = given[name] ?? {};
    // A new route says which runtime it is: defaulting to none would make a typo an unisolated route.
    if (
      !ROUTE_DEFAULTS[name] &&
      typeof settings === 'object' &&
      settings !== null &&
      !('runtimeClassName' in settings)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: [name, 'runtimeClassName'],
        message: 'give the runtimeClassName of a new route (null: the cluster default runtime)',
      });
    }
    const result = routeSchema(ROUTE_DEFAULTS[name] ?? { nodeSelector: {} }).safeParse(settings);
    if (result.success) out[name] = result.data;
    else {
      // Kept as given, so that references to it are not reported as missing: the parse fails anyway.
      out[name] = settings as never;
      for (const issue of result.error.issues)
        ctx.addIssue({ ...issue, path: [name, ...issue.path] } as never);
    }
  }
  return out;
});

/** The top-level fields, in the order the default config text lists them. */
export const configFields = strict({
  mode: z
    .enum(['enforce', 'shadow'])
    .default('enforce')
    .describe('enforce: route and refuse; shadow: decide and annotate only, change and refuse nothing.'),
  namespaces: z
    .array(valid(isDnsLabel, 'namespace name'))
    .min(1, 'list at least one namespace')
    .default(['sd-build-namespace'])
    .describe('The build namespaces; pods elsewhere are never touched.'),
  podSelector: labelSelector
    .default({ matchLabels: { app: 'screwdriver', tier: 'builds' } })
    .describe('A label selector: which pods in the build namespaces are builds.'),
  otherPods: z
    .enum(['route', 'deny', 'allow'])
    .default('route')
    .describe(
      'A pod in a build namespace that podSelector does not match: routed like a build, refused, or let through (allow: a hole).',
    ),
  rolloutKeyLabels: z
    .array(labelKey)
    .default(['screwdriver.cd/pipeline', 'screwdriver.cd/job'])
    .describe('Labels whose values, all present, form the rollout key of a build (its weightage bucket).'),
  weightage: z
    .number()
    .int('must be a whole number from 0 to 100')
    .min(0, 'must be from 0 to 100')
    .max(100, 'must be from 0 to 100')
    .default(100)
    .describe(
      'Percent of eligible jobs routed to the default route (kata); the rest go to fallbackRoute. Sticky per rollout key.',
    ),
  exclusions: z
    .array(exclusion)
    .optional()
    .describe(
      'Regexes (case-insensitive, anywhere in an image) sending builds to fallbackRoute, or {pattern, route}. Default: the EL6 names.',
    ),
  exclusion: z
    .array(exclusion)
    .optional()
    .describe("Screwdriver's executor-router spelling of exclusions; accepted as an alias."),
  pins: z
    .array(pin)
    .default([])
    .describe(
      '[{selector, route, reason}]: builds a selector matches go to that route, before any other rule.',
    ),
  routes: routes
    .prefault({})
    .describe('Route name (a DNS label) -> its settings (below); kata and legacy always exist.'),
  defaultRoute: z
    .string()
    .min(1)
    .default('kata')
    .describe('Where builds go when no rule sends them elsewhere (and the "in" side of weightage).'),
  fallbackRoute: z
    .string()
    .min(1)
    .default('legacy')
    .describe(
      'Where builds outside the rollout go, plain exclusions, and image classes no classRoutes entry names.',
    ),
  automountServiceAccountToken: z
    .boolean()
    .default(false)
    .describe('The automountServiceAccountToken every build pod gets (false: no token in builds).'),
  imageInspection: imageInspection
    .prefault({})
    .describe('Asking registries what images are (docs/images.md).'),
  annotationPrefix: valid(isDnsSubdomain, 'annotation prefix (a DNS subdomain)')
    .default('kata-admission.screwdriver.cd')
    .describe('The prefix of the annotations and the label kata-admission writes.'),
});

export const configSchema = configFields
  // Runs even when other fields failed (every problem in one report), so it reads defensively.
  .superRefine((config, ctx) => crossChecks(config as unknown as Record<string, unknown>, ctx), {
    when: (payload) => isObject(payload.value),
  })
  .transform(({ exclusion, exclusions, ...rest }) => ({
    ...rest,
    exclusions: (exclusions ?? exclusion ?? [...EL6_EXCLUSIONS]).map((e) =>
      typeof e === 'string' ? { pattern: e, route: rest.fallbackRoute } : e,
    ),
  }));

export type Config = z.output<typeof configSchema>;
export type RouteName = string;
export type RouteConfig = Config['routes'][string];
export type Toleration = RouteConfig['tolerations'][number];
export type ImageInspectionConfig = Config['imageInspection'];
export type ContentScanningConfig = ImageInspectionConfig['content'];
export type RegistrySettings = ImageInspectionConfig['registries'][string];
