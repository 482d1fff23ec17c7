// The config compiled into what the routing rules need: regexes, matchers and owned keys built once per config.
import { canonicalJson } from '../kube/json.js';
import { createHash } from 'node:crypto';
import type { Config, RouteConfig, RouteName, Toleration } from '../config/schema.js';
import { quantityValue } from '../kube/quantity.js';
import { memoizedBucketOf } from './bucket.js';
import { compileSelector, type LabelMatcher } from '../kube/labels.js';
import type { ContainerKind, Pod } from '../kube/pod.js';
import { processSeal, type MemorySeal } from './seal.js';

export type { RouteName } from '../config/schema.js';

export interface CompiledRoute extends RouteConfig {
  name: RouteName;
  /** Whether the runtime is a sandbox: `sandboxed`, else whether the route names a runtime class. */
  isSandboxed: boolean;
  /** allowPrivileged as it applies: never without a sandbox unless allowRootOnNode. */
  anyPrivileged: boolean;
  /** Container names, by kind, that may keep privileged: true on this route (none without a sandbox unless allowRootOnNode). */
  privileged: Readonly<Record<ContainerKind, ReadonlySet<string>>>;
  /** The route's io.katacontainers.* annotations: exactly these are on its pods. */
  kataAnnotations: Readonly<Record<string, string>>;
  /** Node label pairs of the other routes' pools that this route's pool does not share. */
  foreignPools: readonly (readonly [string, string])[];
  /** Runtime classes of the other routes (a cluster-default route must not carry one). */
  foreignRuntimeClasses: ReadonlySet<string>;
  /** Every other route of the config, computed once per config. */
  others: readonly CompiledRoute[];
  /** Capabilities a container outside `privileged` may add. */
  capabilities: ReadonlySet<string>;
  /** What the route adds to every pod's tolerations: one per nodeSelector pair (when asked), then its own. */
  addedTolerations: readonly Toleration[];
  /** The preferred node-affinity term for preferredNodeSelectors, if any. */
  preferredTerm?: PreferredTerm;
  /** memoryFloor in bytes where it applies (a sandboxed route), else undefined. */
  memoryFloorBytes?: number;
}

export interface PreferredTerm {
  weight: number;
  preference: { matchExpressions: { key: string; operator: 'In'; values: string[] }[] };
}

export interface Policy {
  config: Config;
  /** Short, stable hash of the normalised config: the same settings give the same hash. */
  hash: string;
  namespaces: ReadonlySet<string>;
  isBuild: LabelMatcher;
  exclusions: readonly { entry: string; pattern: RegExp; route: RouteName }[];
  pins: readonly { matches: LabelMatcher; route: RouteName; reason: string; index: number }[];
  /** Every route, in config order (kata and legacy first). */
  routes: readonly CompiledRoute[];
  /** The route of that name; the config's validation guarantees every name a rule uses exists. */
  route(name: RouteName): CompiledRoute;
  /** The configured route a pod's route annotation names, if any (a pod routed earlier, or a forgery). */
  routeOf(pod: Pod): CompiledRoute | undefined;
  /** Node label keys that belong to the webhook: the keys of every route's nodeSelector. */
  ownedKeys: ReadonlySet<string>;
  /** What an operator should know about the config, for the startup log and `explain`. */
  notes: readonly string[];
  /** Annotation keys (other than Kata's) any route writes: remembered and restored like the spec fields a route decides. */
  routeAnnotationKeys: readonly string[];
  annotations: {
    route: string;
    reason: string;
    detail: string;
    bucket: string;
    config: string;
    mode: string;
    submitted: string;
  };
  /** The rollout bucket of a key (memoised per policy). */
  bucketOf: (key: string) => number;
  /** Seals memories where the caller gives no shared key: a random key of this compiled policy. */
  memorySeal: MemorySeal;
}

/** Kata's per-pod annotations: only the route writes them. */
export const KATA_PREFIX = 'io.katacontainers.';

export function compilePolicy(config: Config): Policy {
  const prefix = config.annotationPrefix;
  const routes = withForeign(Object.entries(config.routes).map(([name, route]) => compileRoute(name, route)));
  const byName = new Map(routes.map((r) => [r.name, r]));
  return {
    config,
    hash: configHash(config),
    namespaces: new Set(config.namespaces),
    isBuild: compileSelector(config.podSelector),
    exclusions: config.exclusions.map(({ pattern, route }) => ({
      entry: pattern,
      pattern: new RegExp(pattern, 'i'),
      route,
    })),
    pins: config.pins.map((pin, index) => ({
      matches: compileSelector(pin.selector),
      route: pin.route,
      reason: pin.reason,
      index,
    })),
    routes,
    route: (name) => {
      const route = byName.get(name);
      if (!route) throw new Error(`no route "${name}"`);
      return route;
    },
    routeOf: (pod) => byName.get(pod.metadata?.annotations?.[`${prefix}/route`] ?? ''),
    ownedKeys: new Set(routes.flatMap((r) => Object.keys(r.nodeSelector))),
    notes: kataAnnotationNotes(routes),
    routeAnnotationKeys: [
      ...new Set(routes.flatMap((r) => Object.keys(r.annotations).filter((k) => !k.startsWith(KATA_PREFIX)))),
    ],
    bucketOf: memoizedBucketOf(),
    memorySeal: processSeal(),
    annotations: {
      route: `${prefix}/route`,
      reason: `${prefix}/reason`,
      detail: `${prefix}/detail`,
      bucket: `${prefix}/bucket`,
      config: `${prefix}/config`,
      mode: `${prefix}/mode`,
      submitted: `${prefix}/submitted`,
    },
  };
}

/** Each route with what the others' pools and runtimes are (the tolerations and runtime rules). */
function withForeign(
  routes: Omit<CompiledRoute, 'foreignPools' | 'foreignRuntimeClasses' | 'others'>[],
): CompiledRoute[] {
  const compiled: CompiledRoute[] = routes.map((route) => {
    const others = routes.filter((o) => o !== route);
    return {
      ...route,
      others: [],
      foreignPools: others
        .flatMap((o) => Object.entries(o.nodeSelector))
        .filter(([k, v]) => route.nodeSelector[k] !== v),
      foreignRuntimeClasses: new Set(others.flatMap((o) => (o.runtimeClassName ? [o.runtimeClassName] : []))),
    };
  });
  for (const route of compiled) route.others = compiled.filter((o) => o !== route);
  return compiled;
}

function compileRoute(
  name: RouteName,
  route: RouteConfig,
): Omit<CompiledRoute, 'foreignPools' | 'foreignRuntimeClasses' | 'others'> {
  const taints: Toleration[] = route.tolerateNodeSelectorTaints
    ? Object.entries(route.nodeSelector).map(([key, value]) => ({
        key,
        operator: 'Equal',
        value,
        effect: 'NoSchedule',
      }))
    : [];
  const preferred = Object.entries(route.preferredNodeSelectors);
  const isSandboxed = route.sandboxed ?? route.runtimeClassName !== null;
  const grants = isSandboxed || route.allowRootOnNode;
  const names = (list: readonly string[]) => new Set(grants ? list : []);
  return {
    ...route,
    name,
    isSandboxed,
    anyPrivileged: grants && route.allowPrivileged,
    privileged: {
      containers: names(route.privilegedContainers),
      initContainers: names(route.privilegedInitContainers),
      ephemeralContainers: names(route.privilegedEphemeralContainers),
    },
    kataAnnotations: Object.fromEntries(
      Object.entries(route.annotations).filter(([key]) => key.startsWith(KATA_PREFIX)),
    ),
    capabilities: new Set(route.allowedCapabilities),
    addedTolerations: [...taints, ...route.tolerations],
    ...(isSandboxed && route.memoryFloor !== null && { memoryFloorBytes: quantityValue(route.memoryFloor) }),
    ...(preferred.length > 0 && {
      preferredTerm: {
        weight: 100,
        preference: {
          matchExpressions: preferred.map(([key, value]) => ({
            key,
            operator: 'In' as const,
            values: [value],
          })),
        },
      },
    }),
  };
}

/** Kata's per-pod annotations only take effect where the node and containerd let them through. */
function kataAnnotationNotes(routes: readonly CompiledRoute[]): string[] {
  return routes.flatMap((route) =>
    Object.keys(route.annotations)
      .filter((key) => key.startsWith('io.katacontainers.'))
      .map(
        (key) =>
          `route ${route.name} sets ${key}: Kata applies it only where the node's Kata configuration lists it in enable_annotations ` +
          `(${key.split('.').pop()}) and containerd passes io.katacontainers.* annotations through (pod_annotations); otherwise it is ignored`,
      ),
  );
}

function configHash(config: Config): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 12);
}
