// Polls files for changed bytes. Polling rather than fs.watch: Kubernetes updates ConfigMap and
// Secret mounts by swapping a `..data` symlink, which inotify on the file path does not report.
import { readFile } from 'node:fs/promises';

export interface FilePoller {
  stop(): void;
}

/**
 * Calls `onChange` with the contents of every file whenever any of them differs from what was
 * last delivered (a pair such as cert+key arrives together). Read errors go to `onError` and
 * are retried on the next tick; the last delivered contents stay in force meanwhile.
 */
export function pollFiles(
  paths: string[],
  intervalMs: number,
  onChange: (contents: Buffer[]) => void,
  onError: (error: Error) => void,
  initial?: Buffer[],
): FilePoller {
  let last = initial;
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const contents = await Promise.all(paths.map((p) => readFile(p)));
      if (!last || contents.some((c, i) => !c.equals(last![i]!))) {
        last = contents;
        onChange(contents);
      }
    } catch (error) {
      onError(error as Error);
    } finally {
      busy = false;
    }
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
