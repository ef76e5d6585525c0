/**
 * How far a long maintenance operation (gc, verify) has got, as it goes: the phase it is in, items and
 * bytes done in that phase against the phase's total when it is known. Reported by the operation itself at
 * each item (and, for verify, each chunk hashed), so a watcher sees real work, never an estimate.
 */
export interface Progress {
  /** what the operation is doing now (gc: uploads, temp files, links, blobs; verify: listing, hashing) */
  phase: string;
  /** items handled in this phase */
  done: number;
  /** items this phase will handle; null while unknown (a listing in progress) */
  total: number | null;
  /** bytes handled in this phase (verify: hashed; gc: of the blobs examined) */
  bytes: number;
  /** bytes this phase will handle; null when unknown */
  totalBytes: number | null;
}

/** Called with a fresh object each time; cheap to call (a job runner keeps the latest). */
export type OnProgress = (p: Progress) => void;

export const noProgress: OnProgress = () => {};

/** A phase's counter: one place that builds the Progress objects a phase reports. */
export class PhaseProgress {
  done = 0;
  bytes = 0;
  /** bytes of the current item counted so far with addBytes */
  private partial = 0;

  constructor(
    private readonly on: OnProgress,
    readonly phase: string,
    private readonly total: number | null,
    private readonly totalBytes: number | null,
  ) {
    this.report();
  }

  /**
   * One more item done, counted with its whole size: what addBytes counted of it is replaced, so an item
   * skipped or cut short still moves the bytes by its size and the phase ends at totalBytes.
   */
  step(size = 0): void {
    this.done += 1;
    this.bytes += size - this.partial;
    this.partial = 0;
    this.report();
  }

  /** Bytes of the current item as they are handled (a large blob being hashed). */
  addBytes(n: number): void {
    this.bytes += n;
    this.partial += n;
    this.report();
  }

  private report(): void {
    this.on({ phase: this.phase, done: this.done, total: this.total, bytes: this.bytes, totalBytes: this.totalBytes });
  }
}
