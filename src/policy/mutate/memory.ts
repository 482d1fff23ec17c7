// What the submitter asked for, remembered on the pod, so that the stored pod does not depend on the
// order of mutating webhooks. Called again after another webhook's change (reinvocation), the
// webhook first puts back the values it replaced, then routes the pod as if seeing it for the first
// time: "us, them, us" gives what "them, us" gives. A value someone else changed since is theirs
// and stays. Only fields this webhook owns are remembered (the route's spec fields, of each
// container only `privileged` and `capabilities.add`, and a build container's memory limit where
// a route's floor raised it), and the memory is sealed with an HMAC over
// the pod's identity and the memory itself: a submitter can neither forge one nor replay one taken
// from another pod, and a memory that fails the check is ignored (with a warning).
import { sameJson as same } from '../../kube/json.js';
import { CONTAINER_KINDS, type Pod } from '../../kube/pod.js';
import type { MemorySeal } from '../seal.js';

type Spec = NonNullable<Pod['spec']>;
type Json = Record<string, unknown>;

/**
 * Spec fields whose value depends on the route (automount and the token volume do not; overhead
 * follows the runtime class: overhead.ts).
 */
const FIELDS = ['runtimeClassName', 'nodeSelector', 'tolerations', 'affinity'] as const;

/** Field (or `container/<name>`, `annotation/<key>`) -> the submitted value and what was written. */
export type Memory = Record<string, { was: unknown; wrote: unknown }>;

/** What a memory is bound to: a memory copied onto another pod does not verify. */
export const podIdentity = (pod: Pod, namespace: string) =>
  `${namespace}/${pod.metadata?.name || `${pod.metadata?.generateName ?? ''}*`}`;

const sealedText = (identity: string, memoryJson: string) => `${identity}\n${memoryJson}`;
const MAC_PREFIX = '{"mac":"';
const MEMORY_PREFIX = '","memory":';

/**
 * `{"mac":...,"memory":...}`. The MAC covers the memory's exact text, which the API server stores
 * verbatim (annotations are strings), so no canonical form is needed.
 */
export function sealMemory(memory: Memory, identity: string, seal: MemorySeal): string {
  const memoryJson = JSON.stringify(memory);
  return `${MAC_PREFIX}${seal.sign(sealedText(identity, memoryJson))}${MEMORY_PREFIX}${memoryJson}}`;
}

/**
 * The memory the annotation holds, when its seal verifies for this pod; `forged` when it does not.
 * The text is checked before it is parsed: only what this webhook wrote, byte for byte, is read.
 */
export function parseMemory(
  text: string | undefined,
  identity: string,
  seal: MemorySeal,
): { memory: Memory; forged?: true } {
  if (!text) return { memory: {} };
  const macEnd = text.indexOf(MEMORY_PREFIX);
  if (!text.startsWith(MAC_PREFIX) || macEnd < 0 || !text.endsWith('}')) return { memory: {}, forged: true };
  const memoryJson = text.slice(macEnd + MEMORY_PREFIX.length, -1);
  if (!seal.verify(sealedText(identity, memoryJson), text.slice(MAC_PREFIX.length, macEnd)))
    return { memory: {}, forged: true };
  try {
    const memory = JSON.parse(memoryJson) as unknown;
    return isMemory(memory) ? { memory } : { memory: {}, forged: true };
  } catch {
    return { memory: {}, forged: true };
  }
}

/**
 * The memory as the annotation carries it, without the key that verifies it (for `explain`, which
 * says so); none when the text is not a memory.
 */
export function unverifiedMemory(text: string | undefined): Memory | undefined {
  try {
    const memory = text ? (JSON.parse(text) as { memory?: unknown }).memory : undefined;
    return isMemory(memory) ? memory : undefined;
  } catch {
    return undefined;
  }
}

function isMemory(value: unknown): value is Memory {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  return Object.values(value).every((v) => v !== null && typeof v === 'object' && 'was' in v && 'wrote' in v);
}

/** Of a container's security context, what the route decides: privileged and the added capabilities. */
function owned(context: unknown): { privileged: unknown; add: unknown } {
  const c = context as { privileged?: unknown; capabilities?: { add?: unknown } } | undefined;
  return { privileged: c?.privileged ?? null, add: c?.capabilities?.add ?? null };
}

/** The context with the owned fields set as remembered (absent where they were absent). */
function withOwned(context: unknown, values: { privileged: unknown; add: unknown }): unknown {
  const next = Object.assign({}, context) as Json;
  setOrDelete(next, 'privileged', values.privileged);
  const capabilities = Object.assign({}, next.capabilities) as Json;
  setOrDelete(capabilities, 'add', values.add);
  setOrDelete(next, 'capabilities', Object.keys(capabilities).length > 0 ? capabilities : null);
  return Object.keys(next).length > 0 ? next : null;
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

const LIMIT = 'limit/';
type Resources = { limits?: Record<string, unknown> } | undefined;
const memoryLimit = (c: object) => (c as { resources?: Resources }).resources?.limits?.memory ?? null;

/** The container with its memory limit set to `value` (none: absent, and empty maps dropped). */
function withMemoryLimit(c: Json, value: unknown): Json {
  const limits = Object.assign({}, (c.resources as Resources)?.limits);
  setOrDelete(limits, 'memory', value);
  const resources = Object.assign({}, c.resources) as Json;
  setOrDelete(resources, 'limits', Object.keys(limits).length > 0 ? limits : null);
  const next = Object.assign({}, c);
  setOrDelete(next, 'resources', Object.keys(resources).length > 0 ? resources : null);
  return next;
}

/** Build containers' memory limits back as submitted, where the floor the webhook wrote is still there. */
function restoreLimits(next: Json, memory: Memory): void {
  const list = next.containers as Json[] | undefined;
  if (!list?.some((c) => memory[`${LIMIT}${String(c.name)}`])) return;
  next.containers = list.map((c) => {
    const remembered = memory[`${LIMIT}${String(c.name)}`];
    return remembered && same(memoryLimit(c), remembered.wrote) ? withMemoryLimit(c, remembered.was) : c;
  });
}

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
    if (!remembered || !same(owned(context), remembered.wrote)) continue;
    const list = [...(next[kind] as Json[])];
    list[index] = Object.assign({}, list[index]);
    setOrDelete(
      list[index]!,
      'securityContext',
      withOwned(context, remembered.was as ReturnType<typeof owned>),
    );
    next[kind] = list;
  }
  restoreLimits(next, memory);
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
    if (was === context) continue;
    const [before, after] = [owned(was), owned(context)];
    if (!same(before, after)) memory[`container/${name}`] = { was: before, wrote: after };
  }
  const limits = new Map(submitted.containers.map((c) => [c.name, memoryLimit(c)]));
  for (const c of routed.containers) {
    const [was, wrote] = [limits.get(c.name) ?? null, memoryLimit(c)];
    if (!same(was, wrote)) memory[`${LIMIT}${c.name}`] = { was, wrote };
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
