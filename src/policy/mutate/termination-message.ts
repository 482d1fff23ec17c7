// A build that fails says why in its pod status: FallbackToLogsOnError makes the kubelet put the
// last log lines there when the container failed without writing a message (a 32-bit binary's
// "exec format error" in the sandbox, say), so nobody has to read logs to learn it. It still uses
// the message file first, so it loses nothing against File, the API server's default, which
// therefore cannot be told from a choice and is replaced too.
import type { V1Container } from '@kubernetes/client-node';
import { copyWith } from '../../kube/json.js';
import type { SpecStep } from './step.js';

const KINDS = ['containers', 'initContainers'] as const;
export const FALLBACK = 'FallbackToLogsOnError';

const chosen = (c: V1Container) => c.terminationMessagePolicy === FALLBACK;

export const terminationMessage: SpecStep = (spec, { kinds }) => {
  let next = spec;
  for (const kind of KINDS) {
    const containers = spec[kind] as V1Container[] | undefined;
    if (!kinds.includes(kind) || !containers || containers.every(chosen)) continue;
    next = copyWith(next, {
      [kind]: containers.map((c) => (chosen(c) ? c : copyWith(c, { terminationMessagePolicy: FALLBACK }))),
    });
  }
  return next;
};
