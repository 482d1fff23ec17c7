// Token buckets by key (a user, a namespace), bounded in number: what one submitter may make the
// webhook scan, and so write to the cluster, per hour.
import { LRUCache } from 'lru-cache';

export interface BucketSettings {
  burst: number;
  perHour: number;
}

export class TokenBuckets {
  private readonly buckets = new LRUCache<string, { tokens: number; at: number }>({ max: 10_000 });

  constructor(private readonly settings: BucketSettings) {}

  /** Whether `key` may have one more now (no token is taken when it may not). */
  allows(key: string, now: number): boolean {
    const { burst, perHour } = this.settings;
    const bucket = this.buckets.get(key) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * perHour) / 3_600_000);
    bucket.at = now;
    this.buckets.set(key, bucket);
    return bucket.tokens >= 1;
  }

  take(key: string): void {
    const bucket = this.buckets.get(key);
    if (bucket) bucket.tokens -= 1;
  }
}
