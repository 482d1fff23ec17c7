// What one field of the config cannot know alone: route references, content needing inspection,
// globs, RuntimeClasses shared by routes. Run even when other fields failed (every problem in one
// report), so they read defensively.
import picomatch from 'picomatch';
import type { z } from 'zod';
import { canonicalJson, isObject } from '../kube/json.js';
import { nearestKey } from './suggest.js';

type Json = Record<string, unknown>;
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const fields = (v: unknown): Json => (isObject(v) ? v : {});

type Issue = (path: (string | number)[], message: string) => void;
type Check = (config: Json, issue: Issue) => void;

const aliasOnce: Check = (config, issue) => {
  if (config.exclusions && config.exclusion)
    issue(['exclusion'], 'give either "exclusions" or its alias "exclusion", not both');
};

/** Every route a rule names must exist. */
const routesExist: Check = (config, issue) => {
  if (!isObject(config.routes)) return;
  const names = Object.keys(config.routes);
  const check = (path: (string | number)[], route: unknown) => {
    if (typeof route !== 'string' || names.includes(route)) return;
    const hint = nearestKey(route, names);
    issue(
      path,
      `no route "${route}"${hint ? ` (did you mean "${hint}"?)` : ''}; routes are ${names.join(', ')}`,
    );
  };
  check(['defaultRoute'], config.defaultRoute);
  check(['fallbackRoute'], config.fallbackRoute);
  list(config.pins).forEach((p, i) => check(['pins', i, 'route'], fields(p).route));
  const listName = config.exclusions ? 'exclusions' : 'exclusion';
  list(config.exclusions ?? config.exclusion).forEach((e, i) =>
    check([listName, i, 'route'], fields(e).route),
  );
  const inspection = fields(config.imageInspection);
  for (const [cls, route] of Object.entries(fields(inspection.classRoutes)))
    check(['imageInspection', 'classRoutes', cls], route);
  check(['imageInspection', 'onUnknown'], inspection.onUnknown);
};

const contentNeedsInspection: Check = (config, issue) => {
  const inspection = fields(config.imageInspection);
  if (fields(inspection.content).enabled === true && inspection.enabled !== true)
    issue(
      ['imageInspection', 'content', 'enabled'],
      'content scanning needs imageInspection.enabled: true (it finds the digest to scan)',
    );
};

const validGlobs: Check = (config, issue) => {
  list(fields(fields(config.imageInspection).content).ignore).forEach((glob, i) => {
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
};

/**
 * The RuntimeClass admission plugin merges a class's scheduling into the pod: routes that share
 * a class must share its pool, or one of them becomes unschedulable by contradiction; and one
 * class has one overhead.
 */
const sharedClassSharesPool: Check = (config, issue) => {
  const routes = fields(config.routes);
  const byClass = new Map<string, string>();
  for (const [name, route] of Object.entries(routes)) {
    const runtimeClass = fields(route).runtimeClassName;
    if (typeof runtimeClass !== 'string') continue;
    const first = byClass.get(runtimeClass);
    if (first === undefined) byClass.set(runtimeClass, name);
    else
      for (const field of ['nodeSelector', 'runtimeClassOverhead'])
        if (canonicalJson(fields(routes[first])[field]) !== canonicalJson(fields(route)[field]))
          issue(
            ['routes', name, field],
            `route ${name} shares RuntimeClass "${runtimeClass}" with route ${first}, so it must share its ${field} too`,
          );
  }
};

const CHECKS: readonly Check[] = [
  aliasOnce,
  routesExist,
  contentNeedsInspection,
  validGlobs,
  sharedClassSharesPool,
];

/** What one field cannot know alone: route references, content needing inspection, globs, shared classes. */
export function crossChecks(config: Json, ctx: z.RefinementCtx): void {
  const issue: Issue = (path, message) => ctx.addIssue({ code: 'custom', path, message });
  for (const check of CHECKS) check(config, issue);
}
