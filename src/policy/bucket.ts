import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

/**
 * The rollout bucket of a key, 0..99: the first 4 bytes of SHA-256(UTF-8 key) as a big-endian
 * unsigned integer, modulo 100. SHA-256 is fixed by standard, so every process, Node version and
 * reimplementation (`printf %s KEY | sha256sum`) agrees; the modulo bias of 2^32 over 100 is < 1e-7.
 */
export function bucketOf(key: string): number {
  return createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0) % 100;
}

/** Keys longer than this are hashed every time: a submitter chooses them, and the memo must stay small. */
const MEMO_KEY_LIMIT = 256;

/**
 * bucketOf with a memo bounded in entries and key length: a job's builds repeat its key, and
 * SHA-256 is most of decide's cost. At most limit * MEMO_KEY_LIMIT characters are kept.
 */
export function memoizedBucketOf(limit = 10_000): (key: string) => number {
  const memo = new LRUCache<string, number>({ max: limit });
  return (key) => {
    if (key.length > MEMO_KEY_LIMIT) return bucketOf(key);
    let bucket = memo.get(key);
    if (bucket === undefined) {
      bucket = bucketOf(key);
      memo.set(key, bucket);
    }
    return bucket;
  };
}
