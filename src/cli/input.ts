// Reading a document (JSON or YAML) from a file or stdin, or a live pod from a cluster.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { apiStatus } from '../kube/api.js';
import { parse as parseYaml } from 'yaml';

export class UsageError extends Error {
  override name = 'UsageError';
}

export async function readDocument(file: string, stdin: NodeJS.ReadableStream): Promise<unknown> {
  let text: string;
  try {
    text = file === '-' ? await readAll(stdin) : await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const name = file === '-' ? 'standard input' : file;
  if (text.trim() === '') throw new UsageError(`${name} is empty`);
  try {
    return JSON.parse(text);
  } catch {
    try {
      return parseYaml(text);
    } catch (error) {
      // The yaml library's message ends with the offending line and a caret under the column.
      throw new UsageError(`${name} is neither JSON nor YAML: ${(error as Error).message.trimEnd()}`);
    }
  }
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** `pod/NAME` (with -n) or `NAMESPACE/NAME` that is not a file: a pod to read from the cluster. */
export function livePodRef(arg: string, namespace?: string): { namespace: string; name: string } | undefined {
  const pod = /^pods?\/([a-z0-9][-a-z0-9.]*)$/.exec(arg);
  if (pod) return { namespace: namespace ?? 'default', name: pod[1]! };
  const qualified = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(arg);
  return qualified && !existsSync(arg) ? { namespace: qualified[1]!, name: qualified[2]! } : undefined;
}

export async function readLivePod(
  kc: KubeConfig,
  ref: { namespace: string; name: string },
): Promise<unknown> {
  try {
    const { CoreV1Api } = await import('@kubernetes/client-node');
    const pod = await kc.makeApiClient(CoreV1Api).readNamespacedPod(ref);
    return { apiVersion: 'v1', kind: 'Pod', ...JSON.parse(JSON.stringify(pod)) };
  } catch (error) {
    const code = apiStatus(error);
    throw new UsageError(
      code === 404
        ? `no pod ${ref.name} in namespace ${ref.namespace}`
        : `cannot read pod ${ref.namespace}/${ref.name}: ${code ? `HTTP ${code}` : (error as Error).message}`,
    );
  }
}
