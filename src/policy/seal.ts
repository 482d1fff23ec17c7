// The key that seals the submitted-value memory (src/policy/mutate/memory.ts). The server derives it
// from the serving key, which every replica mounts from one Secret (docs/security.md).
import {
  createHmac,
  createSecretKey,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';

/** Signs and checks memories: HMAC-SHA256 with the first key; any key verifies (rotation). */
export interface MemorySeal {
  sign(text: string): string;
  verify(text: string, mac: string): boolean;
}

function hmacSeal(secrets: readonly Buffer[]): MemorySeal {
  // A KeyObject made once: given raw bytes, createHmac prepares the key again on every call (~4x the cost).
  const keys = secrets.map((secret) => createSecretKey(secret));
  const mac = (key: KeyObject, text: string) => createHmac('sha256', key).update(text).digest();
  return {
    sign: (text) => mac(keys[0]!, text).toString('base64url'),
    verify: (text, given) => {
      const bytes = Buffer.from(given, 'base64url');
      return keys.some((key) => {
        const expected = mac(key, text);
        return bytes.length === expected.length && timingSafeEqual(bytes, expected);
      });
    },
  };
}

/** The memory key from secret bytes every replica shares (the serving key): HKDF, so it is a key of its own. */
const memoryKeyFrom = (secret: string | Buffer) =>
  Buffer.from(hkdfSync('sha256', secret, '', 'kata-admission submitted-value memory v1', 32));

/** A seal of a random key: what a compiled policy uses when no shared key is given (the CLI, tests). */
export const processSeal = (): MemorySeal => hmacSeal([randomBytes(32)]);

/**
 * The server's seal: keyed from the serving key, which every replica mounts from one Secret. A new
 * serving key signs from then on; the one before still verifies, so a memory written just before a
 * certificate rotation is not taken for a forgery.
 */
export class RotatingSeal implements MemorySeal {
  private keys: Buffer[] = [];
  private seal: MemorySeal = processSeal();

  rotate(secret: string | Buffer): void {
    this.keys = [memoryKeyFrom(secret), ...this.keys].slice(0, 2);
    this.seal = hmacSeal(this.keys);
  }

  sign(text: string): string {
    return this.seal.sign(text);
  }

  verify(text: string, mac: string): boolean {
    return this.seal.verify(text, mac);
  }
}
