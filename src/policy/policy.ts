// The config compiled into what the routing rules need: regexes, matchers and owned keys built once per config.
import { createHash } from 'node:crypto';
import type { Config, RouteConfig, RouteName, Toleration } from '../config/schema.js';
import { memoizedBucketOf } from './bucket.js';
import { compileSelector, type LabelMatcher } from './labels.js';

export type { RouteName } from '../config/schema.js';

export interface CompiledRoute extends RouteConfig {
  name: RouteName;
  /** Container names that may keep privileged: true on this route. */
  privileged: ReadonlySet<string>;
  /** Capabilities a container outside `privileged` may add. */
  capabilities: ReadonlySet<string>;
  /** What the route adds to every pod's tolerations: one per nodeSelector pair (when asked), then its own. */
  addedTolerations: readonly Toleration[];
  /** The preferred node-affinity term for preferredNodeSelectors, if any. */
  preferredTerm?: PreferredTerm;
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
  exclusions: readonly { entry: string; pattern: RegExp }[];
  pins: readonly { matches: LabelMatcher; route: RouteName; reason: string; index: number }[];
  routes: Readonly<Record<RouteName, CompiledRoute>>;
  /** Node label keys that belong to the webhook: the keys of both routes' nodeSelectors. */
  ownedKeys: ReadonlySet<string>;
  annotations: { route: string; reason: string; detail: string; bucket: string; config: string; mode: string; submitted: string };
  /** The rollout bucket of a key (memoised per policy). */
  bucketOf: (key: string) => number;
}

export function otherRoute(route: RouteName): RouteName {
  return route === 'kata' ? 'legacy' : 'kata';
}

export function compilePolicy(config: Config): Policy {
  const prefix = config.annotationPrefix;
  return {
    config,
    hash: configHash(config),
    namespaces: new Set(config.namespaces),
    isBuild: compileSelector(config.podSelector),
    exclusions: config.exclusions.map((entry) => ({ entry, pattern: new RegExp(entry, 'i') })),
    pins: config.pins.map((pin, index) => ({ matches: compileSelector(pin.selector), route: pin.route, reason: pin.reason, index })),
    routes: { kata: compileRoute('kata', config.routes.kata), legacy: compileRoute('legacy', config.routes.legacy) },
    ownedKeys: new Set([...Object.keys(config.routes.kata.nodeSelector), ...Object.keys(config.routes.legacy.nodeSelector)]),
    bucketOf: memoizedBucketOf(),
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

function compileRoute(name: RouteName, route: RouteConfig): CompiledRoute {
  const taints: Toleration[] = route.tolerateNodeSelectorTaints
    ? Object.entries(route.nodeSelector).map(([key, value]) => ({ key, operator: 'Equal', value, effect: 'NoSchedule' }))
    : [];
  const preferred = Object.entries(route.preferredNodeSelectors);
  return {
    ...route,
    name,
    privileged: new Set(route.privilegedContainers),
    capabilities: new Set(route.allowedCapabilities),
    addedTolerations: [...taints, ...route.tolerations],
    ...(preferred.length > 0 && {
      preferredTerm: {
        weight: 100,
        preference: { matchExpressions: preferred.map(([key, value]) => ({ key, operator: 'In' as const, values: [value] })) },
      },
    }),
  };
}

function configHash(config: Config): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 12);
}

/** JSON with object keys sorted, so the hash does not depend on the order keys were written in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
