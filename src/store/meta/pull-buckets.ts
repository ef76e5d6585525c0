import type { PullIndex } from '../types.js';

/**
 * PullIndex in memory, for the embedded store (one process). Nothing is journaled: pull figures are for
 * watching, and a journal line per flush would grow the journal for nothing a restart needs.
 */
export class PullBuckets implements PullIndex {
  private readonly buckets = new Map<string, { exp: number; counts: Map<string, number> }>();

  constructor(private readonly now: () => number) {}

  async countPulls(bucket: string, counts: ReadonlyMap<string, number>, ttlMs: number, cap: number): Promise<void> {
    this.prune();
    let b = this.buckets.get(bucket);
    if (!b) {
      b = { exp: this.now() + ttlMs, counts: new Map() };
      this.buckets.set(bucket, b);
    }
    for (const [name, n] of counts) {
      const cur = b.counts.get(name);
      if (cur !== undefined) b.counts.set(name, cur + n);
      else if (b.counts.size < cap) b.counts.set(name, n);
    }
  }

  async pullCounts(buckets: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const t = this.now();
    for (const id of new Set(buckets)) {
      const b = this.buckets.get(id);
      if (!b || b.exp <= t) continue;
      for (const [name, n] of b.counts) out.set(name, (out.get(name) ?? 0) + n);
    }
    return out;
  }

  private prune(): void {
    const t = this.now();
    for (const [id, b] of this.buckets) if (b.exp <= t) this.buckets.delete(id);
  }
}
