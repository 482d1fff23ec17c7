// Content digests as the OCI image spec defines them: `algorithm:hex`, sha256 or sha512. A registry
// is not trusted to say what a digest is: every byte it serves is hashed here and compared.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

const DIGEST = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
type Algorithm = 'sha256' | 'sha512';

/** The registry served bytes that do not hash to the digest asked for (or more than declared). */
export class DigestMismatch extends Error {
  override name = 'DigestMismatch';
}

function algorithmOf(digest: string): Algorithm {
  if (!DIGEST.test(digest))
    throw new DigestMismatch(`"${digest.slice(0, 80)}" is not a sha256 or sha512 digest`);
  return digest.slice(0, 6) as Algorithm;
}

/** Whether the text is a digest this project can verify (and so may key a verdict). */
export const isVerifiableDigest = (digest: string) => DIGEST.test(digest);

export function digestOf(bytes: Buffer, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** Throws DigestMismatch unless `bytes` hash to `expected`. */
export function verifyBytes(bytes: Buffer, expected: string, what: string): void {
  const actual = digestOf(bytes, algorithmOf(expected));
  if (actual !== expected)
    throw new DigestMismatch(`${what}: the bytes served hash to ${actual}, not ${expected}`);
}

/**
 * Passes bytes through while hashing them; errors as soon as more than `size` bytes arrive (when
 * a size is declared) and at the end unless the bytes hash to `expected`. What reads from it sees
 * the error before the stream ends, so nothing built from unverified bytes is kept.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private bytes = 0;

  constructor(
    private readonly expected: string,
    private readonly size: number | undefined,
    private readonly what: string,
  ) {
    super();
    this.hash = createHash(algorithmOf(expected));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.size !== undefined && this.bytes > this.size)
      return done(
        new DigestMismatch(`${this.what}: more than the ${this.size} bytes its descriptor declares`),
      );
    this.hash.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const actual = `${this.expected.slice(0, this.expected.indexOf(':'))}:${this.hash.digest('hex')}`;
    if (actual !== this.expected)
      return done(
        new DigestMismatch(`${this.what}: the bytes served hash to ${actual}, not ${this.expected}`),
      );
    done();
  }
}
