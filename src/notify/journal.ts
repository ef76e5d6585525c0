import { mkdir, open, readFile, rename, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { QueuedEvent } from './envelope.js';
import type { Entry, EventQueue } from './types.js';

/** Records no endpoint needs any more are rewritten away once they are this many and outnumber the live ones. */
const COMPACT_MIN_DEAD = 1000;

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

interface Stored {
  seq: number;
  at: number;
  q: QueuedEvent;
}

export interface JournalOptions {
  /** directory of the journal (`<dataDir>/notify`) */
  dir: string;
  /** configured endpoints and how many events each may have pending before the oldest are dropped */
  endpoints: ReadonlyArray<{ name: string; maxPending: number }>;
  now: () => number;
  /**
   * ms that records every endpoint has passed stay readable (history(), for `wharf events resend`), at most
   * the largest maxPending of them; 0 or absent: none
   */
  retention?: number;
  /** events dropped for an endpoint beyond its maxPending */
  onDrop(endpoint: string, count: number): void;
}

/**
 * The embedded queue: one append-only file of JSON lines (`events.log`), fsynced before append()
 * resolves (appends that arrive together share one fsync), and the per-endpoint cursors (`cursors.json`,
 * replaced atomically after deliveries). A torn last line (a crash mid-append, never acknowledged) is
 * cut off at open. Records every endpoint has passed are compacted away by rewriting the live ones.
 */
export class Journal implements EventQueue {
  readonly kind = 'journal' as const;
  private readonly entries: Stored[] = [];
  private readonly cursors = new Map<string, number>();
  private readonly listeners: Array<() => void> = [];
  private buffer: Stored[] = [];
  private waiters: Waiter[] = [];
  private flushing = false;
  private lastSeq = 0;
  /** records in the file before the first in-memory entry */
  private dead = 0;
  private cursorWrite: Promise<void> = Promise.resolve();
  private cursorsDirty = false;
  /** bytes of whole records in the file */
  private size = 0;

  private constructor(
    private readonly opts: JournalOptions,
    private fh: FileHandle,
  ) {}

  static async open(opts: JournalOptions): Promise<Journal> {
    await mkdir(opts.dir, { recursive: true });
    const path = join(opts.dir, 'events.log');
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const records: Stored[] = [];
    let good = 0;
    for (let at = 0; at < text.length; ) {
      const nl = text.indexOf('\n', at);
      if (nl < 0) break;
      try {
        records.push(JSON.parse(text.slice(at, nl)) as Stored);
      } catch {
        break;
      }
      at = nl + 1;
      good = Buffer.byteLength(text.slice(0, at));
    }
    const fh = await open(path, 'a+');
    if (good < Buffer.byteLength(text)) await fh.truncate(good);
    const j = new Journal(opts, fh);
    j.size = good;
    j.lastSeq = records.length > 0 ? records[records.length - 1]!.seq : 0;
    let saved: Record<string, number> = {};
    try {
      saved = JSON.parse(await readFile(join(opts.dir, 'cursors.json'), 'utf8')) as Record<string, number>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    // A new endpoint starts at the tail: it gets what happens from now on, not the history.
    for (const ep of opts.endpoints) j.cursors.set(ep.name, typeof saved[ep.name] === 'number' ? saved[ep.name]! : j.lastSeq);
    const low = j.lowCursor();
    const kept = records.length - j.releasable(records, records.filter((r) => r.seq <= low).length);
    j.dead = records.length - kept;
    j.entries.push(...records.slice(j.dead));
    await j.writeCursors();
    j.enforceLimits();
    return j;
  }

  append(events: QueuedEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const at = this.opts.now();
      for (const q of events) this.buffer.push({ seq: ++this.lastSeq, at, q });
      this.waiters.push({ resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  async acquire(): Promise<boolean> {
    return true;
  }

  async read(endpoint: string, max: number): Promise<Entry[]> {
    const from = this.indexAfter(this.cursor(endpoint));
    return this.entries.slice(from, from + max).map((s) => ({ id: String(s.seq), at: s.at, q: s.q }));
  }

  async ack(endpoint: string, entry: Entry): Promise<void> {
    const seq = Number(entry.id);
    if (seq <= this.cursor(endpoint)) return;
    this.cursors.set(endpoint, seq);
    this.release();
    await this.saveCursors();
  }

  async pending(endpoint: string): Promise<{ count: number; oldestAt?: number }> {
    const from = this.indexAfter(this.cursor(endpoint));
    const count = this.entries.length - from;
    return count > 0 ? { count, oldestAt: this.entries[from]!.at } : { count: 0 };
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    while (this.flushing || this.buffer.length > 0) await new Promise((r) => setTimeout(r, 5));
    await this.cursorWrite;
    await this.fh.close();
  }

  private cursor(endpoint: string): number {
    return this.cursors.get(endpoint) ?? this.lastDurable();
  }

  private lastDurable(): number {
    return this.entries.length > 0 ? this.entries[this.entries.length - 1]!.seq : this.lastSeq - this.buffer.length;
  }

  /** Index in `entries` of the first record after `seq` (sequence numbers are contiguous). */
  private indexAfter(seq: number): number {
    const first = this.entries[0];
    if (!first) return 0;
    return Math.min(this.entries.length, Math.max(0, seq + 1 - first.seq));
  }

  private lowCursor(): number {
    let low = Infinity;
    for (const c of this.cursors.values()) low = Math.min(low, c);
    return low === Infinity ? this.lastSeq : low;
  }

  /** Every retained record (delivered ones within the retention window, then the pending ones), in order. */
  async *history(): AsyncIterable<Entry> {
    for (const s of [...this.entries]) yield { id: String(s.seq), at: s.at, q: s.q };
  }

  /** How many of the first `passed` records (every endpoint is past them) need not be retained any more. */
  private releasable(records: readonly Stored[], passed: number): number {
    const retention = this.opts.retention ?? 0;
    const keep = retention > 0 ? Math.max(0, ...this.opts.endpoints.map((e) => e.maxPending)) : 0;
    const horizon = this.opts.now() - retention;
    let n = 0;
    while (n < passed && (passed - n > keep || records[n]!.at < horizon)) n++;
    return n;
  }

  /** Drops from memory what every endpoint has passed (and is older than the retention window). */
  private release(): void {
    const n = this.releasable(this.entries, this.indexAfter(this.lowCursor()));
    if (n > 0) {
      this.entries.splice(0, n);
      this.dead += n;
    }
  }

  /** maxPending: an endpoint that fell too far behind skips its oldest events (counted by the caller). */
  private enforceLimits(): void {
    const tail = this.lastDurable();
    let moved = false;
    for (const ep of this.opts.endpoints) {
      const c = this.cursor(ep.name);
      if (tail - c > ep.maxPending) {
        this.cursors.set(ep.name, tail - ep.maxPending);
        this.opts.onDrop(ep.name, tail - ep.maxPending - c);
        moved = true;
      }
    }
    if (moved) {
      this.release();
      this.saveCursors().catch(() => undefined);
    }
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.buffer.length > 0) {
        const batch = this.buffer;
        const waiters = this.waiters;
        this.buffer = [];
        this.waiters = [];
        const bytes = Buffer.from(batch.map((s) => JSON.stringify(s) + '\n').join(''));
        try {
          await this.fh.write(bytes);
          await this.fh.datasync();
          this.size += bytes.length;
        } catch (err) {
          // Not durable: the requests that caused these fail, and nothing is delivered that was never promised.
          // A partly written batch is cut off, so the records after it are readable at the next open.
          await this.fh.truncate(this.size).catch(() => undefined);
          this.lastSeq -= batch.length;
          for (const s of this.buffer) s.seq -= batch.length;
          for (const w of waiters) w.reject(err);
          continue;
        }
        this.entries.push(...batch);
        for (const w of waiters) w.resolve();
        this.enforceLimits();
        for (const l of this.listeners) l();
        if (this.dead >= COMPACT_MIN_DEAD && this.dead > this.entries.length) await this.compact().catch(() => undefined);
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Rewrites the live records into a new file, then renames it over the old one. */
  private async compact(): Promise<void> {
    const path = join(this.opts.dir, 'events.log');
    const tmp = `${path}.compact`;
    const fh = await open(tmp, 'w');
    const bytes = Buffer.from(this.entries.map((s) => JSON.stringify(s) + '\n').join(''));
    try {
      await fh.write(bytes);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await this.syncDir();
    const old = this.fh;
    this.fh = await open(path, 'a+');
    await old.close();
    this.size = bytes.length;
    this.dead = 0;
  }

  private async syncDir(): Promise<void> {
    const d = await open(this.opts.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  /** Cursor writes are coalesced: one in flight, at most one more after it. */
  private saveCursors(): Promise<void> {
    if (this.cursorsDirty) return this.cursorWrite;
    this.cursorsDirty = true;
    // A failed write is retried by the next ack; a crash before then only means a redelivery.
    this.cursorWrite = this.cursorWrite.then(() => {
      this.cursorsDirty = false;
      return this.writeCursors().catch(() => undefined);
    });
    return this.cursorWrite;
  }

  private async writeCursors(): Promise<void> {
    const path = join(this.opts.dir, 'cursors.json');
    await writeFile(`${path}.tmp`, JSON.stringify(Object.fromEntries(this.cursors)));
    await rename(`${path}.tmp`, path);
  }
}
