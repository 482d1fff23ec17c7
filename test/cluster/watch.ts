// Waiting on the API server's events: a watch until an object satisfies a condition. client-node
// ends a watch request after its own timeout; the wait goes on with a new one from where it was.
import { Watch, type KubeConfig } from '@kubernetes/client-node';

/** The first object at `path` (with `query`) for which `done` holds, within `timeoutMs`. */
export function watchUntil<T>(
  kubeConfig: KubeConfig,
  path: string,
  query: Record<string, string>,
  done: (object: T, type: string) => boolean,
  { timeoutMs, what }: { timeoutMs: number; what: string },
): Promise<T> {
  return new Promise((resolve, reject) => {
    let request: { abort(): void } | undefined;
    let finished = false;
    const finish = (error: Error | undefined, object?: T) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      request?.abort();
      if (error) reject(error);
      else resolve(object!);
    };
    const timer = setTimeout(() => finish(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs);
    const start = () => {
      if (finished) return;
      void new Watch(kubeConfig)
        .watch(
          path,
          query,
          (type, object: T) => done(object, type) && finish(undefined, object),
          // The watch ended (its timeout, or the server's): list and watch again.
          () => start(),
        )
        .then(
          (r) => (request = r),
          (error: unknown) => finish(error as Error),
        );
    };
    start();
  });
}
