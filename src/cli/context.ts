// What every command gets: the process's streams and defaults, and the exit code it sets.
import type { KubeConfig } from '@kubernetes/client-node';
import { InvalidArgumentError } from 'commander';
import { reviewDepsFor, type ReviewDeps } from '../admission/review.js';
import type { Policy } from '../policy/policy.js';

export interface Io {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Defaults the process environment provides (read by the entry point, nowhere else). */
  env: { logLevel?: string; inCluster?: boolean; hostname?: string };
  /** Calls `handler` once on SIGTERM or SIGINT. */
  onShutdownSignal(handler: () => void): void;
}

export interface Context {
  io: Io;
  /** The exit code of a command that finished without throwing (0 unless it says otherwise). */
  exitCode: number;
}

/** The offline commands inspect images exactly as the server would, when the config enables it. */
export async function offlineReviewDeps(policy: Policy): Promise<ReviewDeps> {
  if (!policy.config.imageInspection.enabled) return reviewDepsFor(policy);
  const { inspectorFor } = await import('../images/inspector.js');
  return reviewDepsFor(policy, inspectorFor(policy.config.imageInspection));
}

/** Cluster access, when asked for; the Kubernetes client is loaded only then. */
export async function clusterAccess(
  kubeconfig: string | undefined,
  inCluster: boolean,
): Promise<KubeConfig | undefined> {
  if (!kubeconfig && !inCluster) return undefined;
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}
