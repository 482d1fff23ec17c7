// The parts of a Pod the webhook reads or writes, checked before any rule runs. Checking only:
// the raw object is what gets mutated and diffed, so unknown fields can never be dropped.
import { isObject } from './json.js';
import type { V1Pod } from '@kubernetes/client-node';

export type Pod = V1Pod;
export const CONTAINER_KINDS = ['containers', 'initContainers', 'ephemeralContainers'] as const;
export type ContainerKind = (typeof CONTAINER_KINDS)[number];

// Hand-written rather than a zod schema: this runs on every admission, and a loose zod parse
// copies every object it checks (it was a sixth of the review path's time). A problem's path is
// built on the way back up, so a pod that passes costs no string work.
type Problem = { at: string; message: string };
type Check = (value: unknown) => Problem | undefined;

const describe = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
const here = (message: string): Problem => ({ at: '', message });
const under = (key: string, { at, message }: Problem): Problem => ({
  at: at ? `${key}.${at}` : key,
  message,
});

const object =
  (fields: Record<string, Check>, required: string[] = []): Check =>
  (value) => {
    if (!isObject(value)) return here(`expected an object, got ${describe(value)}`);
    for (const key of required) if (value[key] === undefined) return under(key, here('is required'));
    for (const key in fields) {
      if (value[key] === undefined) continue;
      const problem = fields[key]!(value[key]);
      if (problem) return under(key, problem);
    }
    return undefined;
  };
const array =
  (item: Check, min = 0, tooFew = 'must not be empty'): Check =>
  (value) => {
    if (!Array.isArray(value)) return here(`expected an array, got ${describe(value)}`);
    if (value.length < min) return here(tooFew);
    for (let i = 0; i < value.length; i++) {
      const problem = item(value[i]);
      if (problem) return under(String(i), problem);
    }
    return undefined;
  };
const string =
  (nonEmpty = false): Check =>
  (value) =>
    typeof value !== 'string'
      ? here(`expected a string, got ${describe(value)}`)
      : nonEmpty && value === ''
        ? here('must not be empty')
        : undefined;
const stringMap: Check = (value) => {
  if (!isObject(value)) return here(`expected an object, got ${describe(value)}`);
  for (const key in value)
    if (typeof value[key] !== 'string')
      return under(key, here(`expected a string, got ${describe(value[key])}`));
  return undefined;
};
const number: Check = (value) =>
  typeof value === 'number' ? undefined : here(`expected a number, got ${describe(value)}`);
const boolean: Check = (value) =>
  typeof value === 'boolean' ? undefined : here(`expected a boolean, got ${describe(value)}`);

const securityContext = object({ privileged: boolean, capabilities: object({ add: array(string()) }) });
const container = object(
  {
    name: string(true),
    image: string(true),
    securityContext,
    volumeMounts: array(object({ name: string() })),
  },
  ['name', 'image'],
);
const term = object({
  matchExpressions: array(
    object({ key: string(), operator: string(), values: array(string()) }, ['key', 'operator']),
  ),
});

const buildPod = object(
  {
    metadata: object({ labels: stringMap, annotations: stringMap }),
    spec: object(
      {
        containers: array(container, 1, 'a pod needs at least one container'),
        initContainers: array(container),
        ephemeralContainers: array(container),
        nodeSelector: stringMap,
        tolerations: array(object({ key: string(), operator: string(), value: string(), effect: string() })),
        volumes: array(
          object(
            {
              name: string(true),
              projected: object({ sources: array(object({})) }),
              hostPath: object({ path: string() }, ['path']),
            },
            ['name'],
          ),
        ),
        runtimeClassName: string(),
        nodeName: string(),
        hostPID: boolean,
        hostIPC: boolean,
        hostNetwork: boolean,
        automountServiceAccountToken: boolean,
        affinity: object({
          nodeAffinity: object({
            requiredDuringSchedulingIgnoredDuringExecution: object({ nodeSelectorTerms: array(term) }, [
              'nodeSelectorTerms',
            ]),
            preferredDuringSchedulingIgnoredDuringExecution: array(
              object({ weight: number, preference: term }, ['weight', 'preference']),
            ),
          }),
        }),
      },
      ['containers'],
    ),
  },
  ['spec'],
);

/** Why this object cannot be routed as a build pod, or undefined when it can. */
export function buildPodProblem(value: unknown): string | undefined {
  if (isObject(value) && value.spec === undefined) return 'spec: the pod has no spec';
  const problem = buildPod(value);
  return problem && `${problem.at}: ${problem.message}`;
}

/** Every image of the pod, in the order containers, initContainers, ephemeralContainers. */
export function podImages(pod: Pod): string[] {
  const images: string[] = [];
  const spec = pod.spec as Record<(typeof CONTAINER_KINDS)[number], { image?: string }[] | undefined>;
  for (const kind of CONTAINER_KINDS) for (const c of spec[kind] ?? []) if (c.image) images.push(c.image);
  return images;
}

/** The object's labels when they are a map, else none: a malformed object is simply not a build. */
export function labelsOf(object: unknown): Readonly<Record<string, unknown>> {
  const labels = (object as { metadata?: { labels?: unknown } } | null)?.metadata?.labels;
  return labels !== null && typeof labels === 'object' && !Array.isArray(labels)
    ? (labels as Record<string, unknown>)
    : {};
}
