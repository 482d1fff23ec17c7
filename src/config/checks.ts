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

/** What one field cannot know alone: route references, content needing inspection, globs, shared classes. */
export function crossChecks(config: Json, ctx: z.RefinementCtx): void {
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
  if (isObject(config.routes)) {
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
  if (isObject(config.routes)) {
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
