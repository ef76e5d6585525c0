import type { Digest } from '../oci/index.js';
import type { AccessIndex } from '../store/types.js';

export interface AccessTrackerOptions {
  flushIntervalMs: number;
  now: () => number;
  setInterval?: (fn: () => void, ms: number) => unknown;
  clearInterval?: (handle: unknown) => void;
  /** A background flush failed (the times stay pending for the next one). */
  onError?: (err: unknown) => void;
}

/**
 * Last-access times for eviction, kept in memory and written in batches: the hot path (every blob or
 * manifest served) costs a Map.set, and the metadata store sees one recordAccess per interval.
 */
export class AccessTracker {
  private pending = new Map<Digest, number>();
  private readonly timer: unknown;
  private readonly clear: (handle: unknown) => void;
  /** Flushes run one after another so a slow store never sees two overlapping batches. */
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly meta: AccessIndex,
    private readonly opts: AccessTrackerOptions,
  ) {
    const set = opts.setInterval ?? ((fn: () => void, ms: number) => setInterval(fn, ms));
    this.clear = opts.clearInterval ?? ((h) => clearInterval(h as NodeJS.Timeout));
    this.timer = set(() => {
      this.flush().catch((e: unknown) => opts.onError?.(e));
    }, opts.flushIntervalMs);
    // A pending flush must not keep a CLI process (or a test) alive.
    (this.timer as { unref?: () => void } | undefined)?.unref?.();
  }

  touch(digest: Digest): void {
    if (this.closed) return;
    const t = this.opts.now();
    const cur = this.pending.get(digest);
    if (cur === undefined || t > cur) this.pending.set(digest, t);
  }

  /** The not yet flushed access time of a digest, so eviction does not pick something just read. */
  peek(digest: Digest): number | undefined {
    return this.pending.get(digest);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Writes everything touched so far. On failure the batch is merged back and the error rethrown. */
  flush(): Promise<void> {
    const run = this.tail.then(() => this.flushNow());
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Stops the timer and writes what is pending. Touches after close are ignored. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.clear(this.timer);
    }
    await this.flush();
  }

  private async flushNow(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await this.meta.recordAccess(batch);
    } catch (e) {
      for (const [d, t] of batch) {
        const cur = this.pending.get(d);
        if (cur === undefined || t > cur) this.pending.set(d, t);
      }
      throw e;
    }
  }
}
