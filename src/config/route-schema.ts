// A route's settings, and the routes map where kata and legacy always exist.
import { z } from 'zod';
import { isDnsLabel, isDnsSubdomain } from '../kube/labels.js';
import { isPlainPath } from '../kube/paths.js';
import { isQuantity } from '../kube/quantity.js';
import { annotationMap, labelMap, strict, toleration, valid } from './fields.js';
import { BASELINE_CAPABILITIES, KATA_ANNOTATIONS } from './lists.js';
import { nearestKey } from './suggest.js';

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

/** A Kubernetes resource quantity (250m, 320Mi, 1.5Gi, 2e3). */
const quantity = valid(isQuantity, 'quantity (250m, 320Mi, 1Gi)');

/** A route's settings; a route other than kata and legacy must say its runtimeClassName (null: the cluster default). */
export function routeSchema(defaults: RouteDefaults) {
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
    memoryFloor: quantity
      .nullable()
      .default('512Mi')
      .describe(
        "On a sandboxed route, the least memory limit of a build container: one without a limit, or below it, gets it (with a warning), so the VM's cgroup never holds less than the VM needs to boot; null: none.",
      ),
    runtimeClassOverhead: strict({
      cpu: quantity.describe('CPU the VM itself costs.'),
      memory: quantity.describe('Memory the VM itself costs.'),
    })
      .default({ cpu: '250m', memory: '320Mi' })
      .describe(
        "The podFixed overhead of the RuntimeClass `manifests` renders for this route's runtimeClassName (default: kata-deploy's QEMU figures); routes sharing a class must agree.",
      ),
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

const ROUTE_DEFAULTS: Record<string, RouteDefaults> = {
  kata: { runtimeClassName: 'kata', nodeSelector: { dedicated: 'screwdriver-kata' } },
  legacy: { runtimeClassName: null, nodeSelector: {} },
};

/** Any number of named routes; kata and legacy always exist (filled from their defaults), so two-route configs keep their meaning. */
export const routes = z.record(z.string(), z.unknown()).transform((given, ctx) => {
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
