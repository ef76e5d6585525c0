export interface PeriodicFlushOptions {
  flushIntervalMs: number;
  setInterval?: (fn: () => void, ms: number) => unknown;
  clearInterval?: (handle: unknown) => void;
  /** A background flush failed (the writer keeps what it could not write for the next one). */
  onError?: (err: unknown) => void;
}

/**
 * Runs a batch writer every interval, and on demand, one run after another so a slow store never sees two
 * overlapping batches; close stops the timer and runs it once more. Shared by the in-memory batches that keep
 * the hot path free of store writes (access times, pull counts).
 */
export class PeriodicFlush {
  private readonly timer: unknown;
  private readonly clear: (handle: unknown) => void;
  private tail: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly write: () => Promise<void>,
    opts: PeriodicFlushOptions,
  ) {
    const set = opts.setInterval ?? ((fn: () => void, ms: number) => setInterval(fn, ms));
    this.clear = opts.clearInterval ?? ((h) => clearInterval(h as NodeJS.Timeout));
    this.timer = set(() => {
      this.flush().catch((e: unknown) => opts.onError?.(e));
    }, opts.flushIntervalMs);
    // A pending flush must not keep a CLI process (or a test) alive.
    (this.timer as { unref?: () => void } | undefined)?.unref?.();
  }

  get closed(): boolean {
    return this.stopped;
  }

  flush(): Promise<void> {
    const run = this.tail.then(() => this.write());
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.clear(this.timer);
    }
    await this.flush();
  }
}
