// What the Kubernetes client's errors say, read the one way for every caller.

/** The HTTP status of a failed API call (client-node puts it in one of three places), if any. */
export function apiStatus(error: unknown): number | undefined {
  const e = error as { code?: number; statusCode?: number; response?: { statusCode?: number } } | null;
  return e?.code ?? e?.statusCode ?? e?.response?.statusCode;
}
