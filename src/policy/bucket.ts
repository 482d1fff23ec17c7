import { createHash } from 'node:crypto';

/**
 * The rollout bucket of a key, 0..99: the first 4 bytes of SHA-256(UTF-8 key) as a big-endian
 * unsigned integer, modulo 100. SHA-256 is fixed by standard, so every process, Node version and
 * reimplementation (`printf %s KEY | sha256sum`) agrees; the modulo bias of 2^32 over 100 is < 1e-7.
 */
export function bucketOf(key: string): number {
  return createHash('sha256').update(key, 'utf8').digest().readUInt32BE(0) % 100;
}
