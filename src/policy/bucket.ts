import { createHash } from 'node:crypto';

/**
 * The rollout bucket of a key, 0..99: the first 4 bytes of SHA-256(UTF-8 key) as a big-endian
 * unsigned integer, modulo 100. SHA-256 is fixed by standard, so every process, Node version and
 * reimplementation (`printf %s KEY | sha256sum`) agrees; the modulo bias of 2^32 over 100 is < 1e-7.
 */
export function bucketOf(key: string): number {
  return createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0) % 100;
}

/** bucketOf with a bounded memo: a job's builds repeat its key, and SHA-256 is most of decide's cost. */
export function memoizedBucketOf(limit = 10_000): (key: string) => number {
  const memo = new Map<string, number>();
  return (key) => {
    let bucket = memo.get(key);
    if (bucket === undefined) {
      if (memo.size >= limit) memo.clear();
      bucket = bucketOf(key);
      memo.set(key, bucket);
    }
    return bucket;
  };
}
