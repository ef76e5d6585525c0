/**
 * Coalesces concurrent work by key: every caller for a key while the work runs gets the same promise,
 * so every waiter sees the same outcome. The entry is dropped when the work settles.
 */
export class SingleFlight<V> {
  private readonly inflight = new Map<string, Promise<V>>();

  run(key: string, work: () => Promise<V>): { promise: Promise<V>; joined: boolean } {
    const existing = this.inflight.get(key);
    if (existing) return { promise: existing, joined: true };
    const promise = (async () => {
      try {
        return await work();
      } finally {
        this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, promise);
    return { promise, joined: false };
  }

  get size(): number {
    return this.inflight.size;
  }
}
