// What the submitter asked for, remembered on the pod, so that the stored pod does not depend on the
// order of mutating webhooks. Called again after another webhook's change (reinvocation), the
// webhook first puts back the values it replaced, then routes the pod as if seeing it for the first
// time: "us, them, us" gives what "them, us" gives. A value someone else changed since is theirs
// and stays. A forged memory gains nothing: the route's rules apply to whatever is restored.
// What was written is kept as the value itself, not a hash: comparing it (key order aside, since
// the API server re-serialises) is cheaper than hashing on every admission.
import { sameJson as same } from './json.js';
import { CONTAINER_KINDS, type Pod } from './pod.js';

type Spec = NonNullable<Pod['spec']>;
type Json = Record<string, unknown>;

/**
 * Spec fields whose value depends on the route (automount and the token volume do not; overhead
 * follows the runtime class, see withOverheadFor).
 */
const FIELDS = ['runtimeClassName', 'nodeSelector', 'tolerations', 'affinity'] as const;

/** Field (or `container/<name>`, `annotation/<key>`) -> the submitted value and what was written. */
export type Memory = Record<string, { was: unknown; wrote: unknown }>;

export function parseMemory(text: string | undefined): Memory {
  if (!text) return {};
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(
      Object.entries(parsed as Json).filter(([, v]) => v !== null && typeof v === 'object' && 'wrote' in v),
    ) as Memory;
  } catch {
    return {};
  }
}

function containers(
  spec: Spec,
): { kind: (typeof CONTAINER_KINDS)[number]; index: number; name: string; context: unknown }[] {
  return CONTAINER_KINDS.flatMap((kind) =>
    ((spec[kind] ?? []) as { name: string; securityContext?: unknown }[]).map((c, index) => ({
      kind,
      index,
      name: c.name,
      context: c.securityContext,
    })),
  );
}

const setOrDelete = (object: Json, key: string, value: unknown) => {
  if (value === null || value === undefined) delete object[key];
  else object[key] = value;
};

/** The spec with every remembered value put back, where what the webhook wrote is still there. */
export function restoreSubmitted(spec: Spec, memory: Memory): Spec {
  const entries = Object.entries(memory);
  if (entries.length === 0) return spec;
  const next = Object.assign({}, spec) as unknown as Json;
  for (const [key, { was, wrote }] of entries) {
    if ((FIELDS as readonly string[]).includes(key) && same(next[key], wrote)) setOrDelete(next, key, was);
  }
  for (const { kind, index, name, context } of containers(spec)) {
    const remembered = memory[`container/${name}`];
    if (!remembered || !same(context, remembered.wrote)) continue;
    const list = [...(next[kind] as Json[])];
    list[index] = Object.assign({}, list[index]);
    setOrDelete(list[index]!, 'securityContext', remembered.was);
    next[kind] = list;
  }
  return next as unknown as Spec;
}

/** What changed from the submitted spec to the routed one, to be restored on a later pass. */
export function rememberSubmitted(submitted: Spec, routed: Spec): Memory {
  const memory: Memory = {};
  if (submitted === routed) return memory;
  const [before, after] = [submitted as unknown as Json, routed as unknown as Json];
  // Copy-on-write: a field the route did not change is the very same object.
  for (const key of FIELDS) {
    if (before[key] !== after[key]) memory[key] = { was: before[key] ?? null, wrote: after[key] ?? null };
  }
  const original = new Map(containers(submitted).map((c) => [c.name, c.context]));
  for (const { name, context } of containers(routed)) {
    const was = original.get(name);
    if (was !== context) memory[`container/${name}`] = { was: was ?? null, wrote: context ?? null };
  }
  return memory;
}

type Annotations = Record<string, string> | undefined;
const ANNOTATION = 'annotation/';

/** The annotations with every remembered route annotation put back, where what was written is still there. */
export function restoreAnnotations(annotations: Annotations, memory: Memory): Annotations {
  let next = annotations;
  for (const [entry, { was, wrote }] of Object.entries(memory)) {
    if (!entry.startsWith(ANNOTATION)) continue;
    const key = entry.slice(ANNOTATION.length);
    if (!same(next?.[key], wrote)) continue;
    next = Object.assign({}, next);
    setOrDelete(next as Json, key, was);
  }
  return next;
}

/** What the route's annotations changed, for `keys` the route writes. */
export function rememberAnnotations(
  before: Annotations,
  after: Annotations,
  keys: readonly string[],
): Memory {
  const memory: Memory = {};
  for (const key of keys) {
    if (before?.[key] !== after?.[key])
      memory[`${ANNOTATION}${key}`] = { was: before?.[key] ?? null, wrote: after?.[key] ?? null };
  }
  return memory;
}
