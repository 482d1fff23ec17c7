// The config file's schema (docs/configuration.md). Every field has a default, every error names its path.
import { z } from 'zod';
import { isDnsLabel, isDnsSubdomain } from '../kube/labels.js';
import { isObject } from '../kube/json.js';
import { crossChecks } from './checks.js';
import { labelKey, labelSelector, regex, strict, valid } from './fields.js';
import { imageInspection } from './images-schema.js';
import { EL6_EXCLUSIONS } from './lists.js';
import { routes } from './route-schema.js';

export { routeSettingsSchema } from './route-schema.js';

const pin = strict({
  selector: labelSelector.describe('A label selector over the pod.'),
  route: z.string().min(1).describe('The route of the pods it selects.'),
  reason: z.string().default('').describe("Said in the decision's detail."),
});

/** An exclusion is a regex (to the fallback route, as Screwdriver's executor-router has it) or {pattern, route}. */
const exclusion = z.union([regex, strict({ pattern: regex, route: z.string().min(1) })], {
  error: 'an exclusion is a regular expression or {pattern: REGEX, route: NAME}',
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
