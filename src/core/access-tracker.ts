import type { Digest } from '../oci/index.js';
import type { AccessIndex } from '../store/types.js';
import { PeriodicFlush, type PeriodicFlushOptions } from './periodic-flush.js';

export interface AccessTrackerOptions extends PeriodicFlushOptions {
  now: () => number;
}

/**
 * Last-access times for eviction, kept in memory and written in batches: the hot path (every blob or
 * manifest served) costs a Map.set, and the metadata store sees one recordAccess per interval.
 */
export class AccessTracker {
  private pending = new Map<Digest, number>();
  /** the batch being written: still answered by peek() until the store has it */
  private writing: Map<Digest, number> | undefined;
  /** Flushes run one after another so a slow store never sees two overlapping batches. */
  private readonly flusher: PeriodicFlush;

  constructor(
    private readonly meta: AccessIndex,
    private readonly opts: AccessTrackerOptions,
  ) {
    this.flusher = new PeriodicFlush(() => this.flushNow(), opts);
  }

  touch(digest: Digest): void {
    if (this.flusher.closed) return;
    const t = this.opts.now();
    const cur = this.pending.get(digest);
    if (cur === undefined || t > cur) this.pending.set(digest, t);
  }

  /** The not yet flushed access time of a digest, so eviction does not pick something just read. */
  peek(digest: Digest): number | undefined {
    const pending = this.pending.get(digest);
    const writing = this.writing?.get(digest);
    return writing === undefined || (pending !== undefined && pending > writing) ? pending : writing;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Writes everything touched so far. On failure the batch is merged back and the error rethrown. */
  flush(): Promise<void> {
    return this.flusher.flush();
  }

  /** Stops the timer and writes what is pending. Touches after close are ignored. */
  close(): Promise<void> {
    return this.flusher.close();
  }

  private async flushNow(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    // Until recordAccess resolves the store may not show these times yet: an eviction pass in between must
    // still see them (peek), or it could pick content that was read a moment ago.
    this.writing = batch;
    try {
      await this.meta.recordAccess(batch);
    } catch (e) {
      for (const [d, t] of batch) {
        const cur = this.pending.get(d);
        if (cur === undefined || t > cur) this.pending.set(d, t);
      }
      throw e;
    } finally {
      this.writing = undefined;
    }
  }
}
