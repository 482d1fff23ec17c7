// Paths as the hostPath rule reads them: the config, the webhook and the guard's CEL share these.

/** A "." or ".." segment, as RE2 and JavaScript both read it: the guard's CEL uses the same text. */
export const DOT_SEGMENT = '(^|/)[.]{1,2}(/|$)';
const dotSegment = new RegExp(DOT_SEGMENT);

/** A path with no ".", ".." or empty segment: "starts with a folder" then means "inside it". */
export function isPlainPath(path: string): boolean {
  return !dotSegment.test(path) && !path.includes('//');
}

/** Is `path` inside one of `prefixes` (each an absolute folder ending in "/")? */
export function hostPathAllowed(path: string, prefixes: readonly string[]): boolean {
  if (!isPlainPath(path)) return false;
  return prefixes.some((prefix) => path.startsWith(prefix) || path === prefix.slice(0, -1));
}
