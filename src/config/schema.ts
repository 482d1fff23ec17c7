// The config file's schema (docs/configuration.md). Every field has a default, every error names its path.
import picomatch from 'picomatch';
import { z } from 'zod';
import { isDnsLabel, isDnsSubdomain, isLabelKey, isLabelValue } from '../policy/labels.js';
import { canonicalJson } from '../policy/policy.js';
import { isPlainPath } from '../policy/paths.js';
import { nearestKey } from './suggest.js';

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

/** The names EL6 images go by (docs/routing.md: Decision rules); the embedded default lists the same. */
export const EL6_EXCLUSIONS = [
  'rhel-?6(?![0-9])',
  'centos[:/_-]?(centos)?6(?![0-9])',
  '(^|[^a-z0-9])el6(?![0-9])',
  'oraclelinux:6(?![0-9])',
  '(^|/)sl:6(?![0-9])',
  'ubi6',
] as const;

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

/** Pod Security Standards "baseline": the capabilities a container may add without being privileged. */
export const BASELINE_CAPABILITIES = [
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
] as const;

const capability = valid(
  (c) => /^[A-Z][A-Z0-9_]*$/.test(c) && c !== 'ALL',
  'capability name (upper case, without CAP_, never ALL)',
);

/** An absolute path ending in "/", without "." or ".." segments, so "starts with" means "inside". */
const hostPathPrefix = valid(
  (p) => p.startsWith('/') && p.endsWith('/') && isPlainPath(p),
  'hostPath prefix (an absolute folder path ending in "/", e.g. /opt/screwdriver/)',
);

/** Kata's per-pod annotations (io.katacontainers.*) that a route may set; others are a config error. */
export const KATA_ANNOTATIONS = [
  'io.katacontainers.config.hypervisor.kernel_params',
  'io.katacontainers.config.hypervisor.default_vcpus',
  'io.katacontainers.config.hypervisor.default_max_vcpus',
  'io.katacontainers.config.hypervisor.default_memory',
  'io.katacontainers.config.hypervisor.memory_slots',
  'io.katacontainers.config.hypervisor.machine_type',
  'io.katacontainers.config.hypervisor.kernel',
  'io.katacontainers.config.hypervisor.image',
  'io.katacontainers.config.hypervisor.initrd',
  'io.katacontainers.config.hypervisor.firmware',
  'io.katacontainers.config.hypervisor.enable_iommu',
  'io.katacontainers.config.hypervisor.enable_hugepages',
  'io.katacontainers.config.hypervisor.block_device_driver',
  'io.katacontainers.config.hypervisor.shared_fs',
  'io.katacontainers.config.hypervisor.virtio_fs_cache',
  'io.katacontainers.config.hypervisor.virtio_fs_extra_args',
  'io.katacontainers.config.hypervisor.cpu_features',
  'io.katacontainers.config.hypervisor.entropy_source',
  'io.katacontainers.config.runtime.disable_guest_seccomp',
  'io.katacontainers.config.runtime.sandbox_cgroup_only',
  'io.katacontainers.config.agent.kernel_modules',
] as const;

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
    runtimeClassName: runtimeClassName.default(defaults.runtimeClassName ?? null),
    nodeSelector: labelMap.default(defaults.nodeSelector),
    tolerateNodeSelectorTaints: z.boolean().default(true),
    preferredNodeSelectors: labelMap.default({}),
    tolerations: z.array(toleration).default([]),
    annotations: routeAnnotations.default({}),
    allowPrivileged: z.boolean().default(false),
    /** Regular containers that may keep privileged: true (inside the sandbox: Screwdriver's dind). */
    privilegedContainers: z.array(z.string().min(1)).default(['dind', 'buildkitd']),
    privilegedInitContainers: z.array(z.string().min(1)).default([]),
    privilegedEphemeralContainers: z.array(z.string().min(1)).default([]),
    /** Whether the runtime is a sandbox (a VM); by default, any route with a runtimeClassName. */
    sandboxed: z.boolean().optional(),
    /**
     * Without a sandbox a privileged container is root on the node: allowPrivileged and the
     * privileged lists apply on such a route only with this set to true.
     */
    allowRootOnNode: z.boolean().default(false),
    /** Capabilities other containers may add: Pod Security Standards' baseline list. */
    allowedCapabilities: z.array(capability).default([...BASELINE_CAPABILITIES]),
    /** hostPath volumes must lie under one of these (Kata shares hostPaths into the guest). */
    hostPathPrefixes: z.array(hostPathPrefix).default(['/opt/screwdriver/']),
  });
}

const legacyGlibcRule = z.union(
  [strict({ label: z.string().min(1), pattern: regex }), strict({ history: regex })],
  { error: 'a rule is {label: NAME, pattern: REGEX} or {history: REGEX}' },
);

/** host[:port], as a Location header or image reference names it. */
const hostPort = valid((h) => /^[a-z0-9.-]+(:[0-9]{1,5})?$/i.test(h), 'host[:port]');
const httpsUrl = valid((u) => /^https?:\/\/[^/]+\//.test(u), 'URL prefix (scheme://host/...)');

const registrySettings = strict({
  insecure: z.boolean().default(false),
  caFile: z.string().min(1).optional(),
  dockerConfigJson: z.string().min(1).optional(),
  mirror: z.string().min(1).optional(),
  /** Hosts the registry may redirect blob downloads to (its storage); followed without credentials. */
  blobHosts: z.array(hostPort).default([]),
  /** Token realms besides the registry's own host that may receive its credentials. */
  tokenRealms: z.array(httpsUrl).default([]),
});

/** A token bucket: `burst` at once, refilled at `perHour`. */
const tokenBucket = (burst: number, perHour: number) =>
  strict({
    burst: z.number().int().min(1).default(burst),
    perHour: z.number().int().min(1).default(perHour),
  }).prefault({});

/** Reading the image's layers (docs/images.md). Needs imageInspection.enabled for the digest. */
const contentScanning = strict({
  enabled: z.boolean().default(false),
  workers: z.number().int().min(1).max(16).default(2),
  /** Images waiting for a worker; past this a scan is not queued (the next admission asks again). */
  maxQueued: z.number().int().min(1).default(1000),
  /** Compressed bytes of all layers; a larger image is not read (its verdict says so). */
  maxImageBytes: z
    .number()
    .int()
    .min(1)
    .default(4 * 1024 ** 3),
  maxImageSeconds: z.number().int().min(1).max(3600).default(600),
  /** Globs over paths without the leading "/", of 32-bit ELF files that do not count. */
  ignore: z.array(z.string().min(1)).default(['lib/firmware/**', 'usr/lib/firmware/**', '**/testdata/**']),
  /** Memory for layer summaries, shared by the images built on a layer. */
  layerCacheBytes: z
    .number()
    .int()
    .min(1024 * 1024)
    .default(64 * 1024 * 1024),
  /** A verdict no admission used for this long is deleted. */
  forgetAfterSeconds: z
    .number()
    .int()
    .min(60)
    .default(30 * 86_400),
  /** A scan the registry failed is tried again after this, doubling with each failure. */
  retryFailedSeconds: z.number().int().min(1).default(600),
  /** A verdict whose scan failed (nothing was learned) is deleted after this. */
  failedForgetAfterSeconds: z
    .number()
    .int()
    .min(60)
    .default(6 * 3600),
  /** Registries not named in imageInspection.registries: never read (skip), or read (scan). */
  otherRegistries: z.enum(['skip', 'scan']).default('skip'),
  /** Expanded (uncompressed) bytes of all layers read; past this the scan stops. */
  maxUnpackedBytes: z
    .number()
    .int()
    .min(1)
    .default(16 * 1024 ** 3),
  /** Per layer: tar entries, 32-bit ELF paths kept, whiteouts; past any of them the scan stops. */
  maxEntriesPerLayer: z.number().int().min(1).default(1_000_000),
  maxElf32PerLayer: z.number().int().min(1).default(10_000),
  maxWhiteoutsPerLayer: z.number().int().min(1).default(100_000),
  /** New scans a requesting user, and a namespace, may cause (admissions past it use config facts). */
  scanRate: strict({
    perUser: tokenBucket(100, 1000),
    perNamespace: tokenBucket(200, 2000),
  }).prefault({}),
});

const imageInspection = strict({
  enabled: z.boolean().default(false),
  timeoutMs: z
    .number()
    .int()
    .min(50, 'must be at least 50')
    .max(25_000, 'must stay under the webhook timeout (at most 25000)')
    .default(1500),
  cacheTtlSeconds: z.number().int().min(0).default(3600),
  negativeCacheTtlSeconds: z.number().int().min(0).default(60),
  maxEntries: z.number().int().min(1).default(10_000),
  /** A route name; the default route means "treat as compatible" (weightage still applies). */
  onUnknown: z.string().min(1).default('kata'),
  /** Image classes to routes; a class not named goes to the fallback route. */
  classRoutes: z.partialRecord(z.enum(['32-bit', 'legacy-glibc']), z.string().min(1)).default({}),
  legacyGlibc: z
    .array(legacyGlibcRule)
    .default([
      { label: 'org.opencontainers.image.base.name', pattern: 'centos:6|rhel-?6|el6' },
      { history: 'centos-release-6|redhat-release-server-6' },
    ]),
  registries: z.record(z.string(), registrySettings).default({}),
  /** Registries not named in `registries`: asked for manifests (inspect) or not (skip: unknown). */
  otherRegistries: z.enum(['skip', 'inspect']).default('skip'),
  content: contentScanning.prefault({}),
});

const pin = strict({
  selector: labelSelector,
  route: z.string().min(1),
  reason: z.string().default(''),
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

export const configSchema = strict({
  mode: z.enum(['enforce', 'shadow']).default('enforce'),
  namespaces: z
    .array(valid(isDnsLabel, 'namespace name'))
    .min(1, 'list at least one namespace')
    .default(['sd-build-namespace']),
  podSelector: labelSelector.default({ matchLabels: { app: 'screwdriver', tier: 'builds' } }),
  /** Pods in a build namespace that podSelector does not match: routed like builds, refused, or let through (a hole). */
  otherPods: z.enum(['route', 'deny', 'allow']).default('route'),
  rolloutKeyLabels: z.array(labelKey).default(['screwdriver.cd/pipeline', 'screwdriver.cd/job']),
  weightage: z
    .number()
    .int('must be a whole number from 0 to 100')
    .min(0, 'must be from 0 to 100')
    .max(100, 'must be from 0 to 100')
    .default(100),
  exclusions: z.array(exclusion).optional(),
  /** Screwdriver's executor-router spells it `exclusion`; accepted as an alias. */
  exclusion: z.array(exclusion).optional(),
  pins: z.array(pin).default([]),
  routes: routes.prefault({}),
  /** Where builds go when no rule sends them elsewhere (and the "in" side of weightage). */
  defaultRoute: z.string().min(1).default('kata'),
  /** Where builds outside the rollout go, and images no rule names a route for. */
  fallbackRoute: z.string().min(1).default('legacy'),
  automountServiceAccountToken: z.boolean().default(false),
  imageInspection: imageInspection.prefault({}),
  annotationPrefix: valid(isDnsSubdomain, 'annotation prefix (a DNS subdomain)').default(
    'kata-admission.screwdriver.cd',
  ),
})
  // Runs even when other fields failed (every problem in one report), so it reads defensively.
  .superRefine((config, ctx) => crossChecks(config as unknown as Json, ctx), {
    when: (payload) => isJson(payload.value),
  })
  .transform(({ exclusion, exclusions, ...rest }) => ({
    ...rest,
    exclusions: (exclusions ?? exclusion ?? [...EL6_EXCLUSIONS]).map((e) =>
      typeof e === 'string' ? { pattern: e, route: rest.fallbackRoute } : e,
    ),
  }));

type Json = Record<string, unknown>;
const isJson = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const fields = (v: unknown): Json => (isJson(v) ? v : {});

/** What one field cannot know alone: route references, content needing inspection, globs, shared classes. */
function crossChecks(config: Json, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) =>
    ctx.addIssue({ code: 'custom', path, message });
  if (config.exclusions && config.exclusion)
    issue(['exclusion'], 'give either "exclusions" or its alias "exclusion", not both');
  const routes = fields(config.routes);
  const names = Object.keys(routes);
  // Every route a rule names must exist.
  const check = (path: (string | number)[], route: unknown) => {
    if (typeof route !== 'string' || names.includes(route)) return;
    const hint = nearestKey(route, names);
    issue(
      path,
      `no route "${route}"${hint ? ` (did you mean "${hint}"?)` : ''}; routes are ${names.join(', ')}`,
    );
  };
  if (isJson(config.routes)) {
    check(['defaultRoute'], config.defaultRoute);
    check(['fallbackRoute'], config.fallbackRoute);
    list(config.pins).forEach((p, i) => check(['pins', i, 'route'], fields(p).route));
    const listName = config.exclusions ? 'exclusions' : 'exclusion';
    list(config.exclusions ?? config.exclusion).forEach((e, i) =>
      check([listName, i, 'route'], fields(e).route),
    );
  }
  const inspection = fields(config.imageInspection);
  const content = fields(inspection.content);
  if (isJson(config.routes)) {
    for (const [cls, route] of Object.entries(fields(inspection.classRoutes)))
      check(['imageInspection', 'classRoutes', cls], route);
    check(['imageInspection', 'onUnknown'], inspection.onUnknown);
  }
  if (content.enabled === true && inspection.enabled !== true)
    issue(
      ['imageInspection', 'content', 'enabled'],
      'content scanning needs imageInspection.enabled: true (it finds the digest to scan)',
    );
  list(content.ignore).forEach((glob, i) => {
    if (typeof glob !== 'string') return;
    try {
      picomatch.makeRe(glob);
    } catch (error) {
      issue(
        ['imageInspection', 'content', 'ignore', i],
        `"${glob}" is not a valid glob: ${(error as Error).message}`,
      );
    }
  });
  // The RuntimeClass admission plugin merges a class's scheduling into the pod: routes that share
  // a class must share its pool, or one of them becomes unschedulable by contradiction.
  const byClass = new Map<string, string>();
  for (const [name, route] of Object.entries(routes)) {
    const runtimeClass = fields(route).runtimeClassName;
    if (typeof runtimeClass !== 'string') continue;
    const first = byClass.get(runtimeClass);
    if (first === undefined) byClass.set(runtimeClass, name);
    else if (canonicalJson(fields(routes[first]).nodeSelector) !== canonicalJson(fields(route).nodeSelector))
      issue(
        ['routes', name, 'nodeSelector'],
        `route ${name} shares RuntimeClass "${runtimeClass}" with route ${first}, so it must share its nodeSelector too`,
      );
  }
}

export type Config = z.output<typeof configSchema>;
export type RouteName = string;
export type RouteConfig = Config['routes'][string];
export type Toleration = RouteConfig['tolerations'][number];
export type ImageInspectionConfig = Config['imageInspection'];
export type ContentScanningConfig = ImageInspectionConfig['content'];
export type RegistrySettings = ImageInspectionConfig['registries'][string];
