// Bytes of request bodies in flight, shared by all requests: memory stays bounded however many large
// reviews arrive at once. A request waits (first come, first served) until its bytes fit; the API
// server's webhook timeout bounds the wait. Hand-written: the weighted semaphores on npm are either
// unmaintained or count-only, and this is the whole of it.
export class ByteBudget {
  private used = 0;
  private readonly waiting: { bytes: number; grant: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** Waits until `bytes` (at most the capacity) fit, then returns the function that gives them back. */
  async acquire(bytes: number): Promise<() => void> {
    const size = Math.min(bytes, this.capacity);
    if (this.waiting.length > 0 || this.used + size > this.capacity) {
      await new Promise<void>((grant) => this.waiting.push({ bytes: size, grant }));
    } else {
      this.used += size;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= size;
      this.grantWaiting();
    };
  }

  get inUse(): number {
    return this.used;
  }

  private grantWaiting() {
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.bytes <= this.capacity) {
      const next = this.waiting.shift()!;
      this.used += next.bytes;
      next.grant();
    }
  }
}
