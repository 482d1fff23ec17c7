// How a build that failed because of its image reads in a terminated container's status: the
// signatures are the config's, the status the kubelet's (the submitter cannot write it).
import type { V1ContainerStatus } from '@kubernetes/client-node';
import type { Config } from '../../config/schema.js';

type Signature = Config['imageInspection']['content']['learning']['signatures'][number];

export interface SandboxFailure {
  class: Signature['class'];
  /** What matched, for people: the message's line, or the exit code and how soon it came. */
  evidence: string;
}

/** Seconds from start to end, when both are known (a container that never started has none). */
function runSeconds(started: unknown, finished: unknown): number | undefined {
  const [a, b] = [new Date(started as string).getTime(), new Date(finished as string).getTime()];
  if (!(a > 0) || !(b >= a)) return undefined;
  return (b - a) / 1000;
}

function matches(signature: Signature, exitCode: number, message: string, seconds: number | undefined) {
  if (signature.exitCode !== undefined && exitCode !== signature.exitCode) return false;
  if (signature.emptyMessage && message.trim() !== '') return false;
  if (signature.withinSeconds !== undefined && !(seconds !== undefined && seconds <= signature.withinSeconds))
    return false;
  return signature.message === undefined || new RegExp(signature.message, 'i').test(message);
}

/** The first signature a failed container matches, or nothing. */
export function sandboxFailure(
  status: V1ContainerStatus,
  signatures: readonly Signature[],
): SandboxFailure | undefined {
  const ended = status.state?.terminated;
  if (!ended || ended.exitCode === 0) return undefined;
  const message = ended.message ?? '';
  const seconds = runSeconds(ended.startedAt, ended.finishedAt);
  const signature = signatures.find((s) => matches(s, ended.exitCode, message, seconds));
  if (!signature) return undefined;
  const line = signature.message
    ? message.split('\n').find((l) => new RegExp(signature.message!, 'i').test(l))
    : undefined;
  const evidence =
    line?.trim().slice(0, 200) ??
    `exit ${ended.exitCode}${seconds === undefined ? '' : ` after ${seconds} s`}${message ? '' : ', no message'}`;
  return { class: signature.class, evidence };
}
