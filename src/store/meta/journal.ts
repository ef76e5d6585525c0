import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from '../blob/blob-fs.js';
import type { Op, Snapshot } from './memory-state.js';

export interface ReplayResult {
  snapshot: Snapshot | undefined;
  ops: Op[];
  /** the last line was cut short (crash mid-append) and was ignored */
  tornTail: boolean;
  /** complete lines that did not parse (should never happen; counted, not fatal) */
  skipped: number;
}

const SNAPSHOT = 'snapshot.json';
const JOURNAL = 'journal.log';

/** Reads the snapshot and the journal lines after it. */
export async function replay(dir: string): Promise<ReplayResult> {
  let snapshot: Snapshot | undefined;
  const snapText = await readFile(join(dir, SNAPSHOT), 'utf8').catch((e: unknown) => {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw e;
  });
  if (snapText !== undefined) {
    try {
      snapshot = JSON.parse(snapText) as Snapshot;
    } catch (e) {
      // Snapshots are published by rename after fsync, so this is damage, not a crash: refuse to guess.
      throw new Error(`metadata store: ${join(dir, SNAPSHOT)} is corrupt (${(e as Error).message})`, { cause: e });
    }
  }
  const text = await readFile(join(dir, JOURNAL), 'utf8').catch((e: unknown) => {
    if (errnoOf(e) === 'ENOENT') return '';
    throw e;
  });
  const lines = text.split('\n');
  const tail = lines.pop() ?? '';
  const ops: Op[] = [];
  let skipped = 0;
  for (const line of lines) {
    if (line === '') continue;
    try {
      ops.push(JSON.parse(line) as Op);
    } catch {
      skipped++;
    }
  }
  return { snapshot, ops, tornTail: tail !== '', skipped };
}

/**
 * Append-only JSON-lines journal with group commit: lines queued while a write+fsync is running go out
 * together in the next one, and each append resolves only once its line is durable.
 */
export class Journal {
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private fh: FileHandle,
    private bytes: number,
    private readonly snapshot: () => Snapshot,
    private readonly compactBytes: number,
  ) {}

  /** Writes a fresh snapshot and starts an empty journal (drops any torn tail from a crash). */
  static async start(dir: string, snapshot: () => Snapshot, compactBytes: number): Promise<Journal> {
    await writeSnapshot(dir, snapshot());
    const fh = await open(join(dir, JOURNAL), 'w');
    await fh.sync();
    return new Journal(dir, fh, 0, snapshot, compactBytes);
  }

  append(op: Op): Promise<void> {
    if (this.closed) return Promise.reject(new Error('metadata store is closed'));
    this.pending.push(`${JSON.stringify(op)}\n`);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  get size(): number {
    return this.bytes;
  }

  /** Resolves once every line appended so far has been written and synced (or has failed to be). */
  settled(): Promise<void> {
    return this.flushing ?? Promise.resolve();
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = undefined;
      if (this.pending.length > 0) this.kick();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const buf = Buffer.from(this.pending.join(''));
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      try {
        // Positional, so a failed (short) write is cut off below instead of gluing onto the next line.
        let off = 0;
        while (off < buf.length) off += (await this.fh.write(buf, off, buf.length - off, this.bytes + off)).bytesWritten;
        await this.fh.datasync();
        this.bytes += buf.length;
        for (const w of waiters) w.resolve();
      } catch (e) {
        await this.fh.truncate(this.bytes).catch(() => undefined);
        for (const w of waiters) w.reject(e);
        continue;
      }
      if (this.bytes >= this.compactBytes) await this.compact().catch(() => undefined);
    }
  }

  /** Snapshot of the current state, then an empty journal. Replay is idempotent, so order is safe. */
  async compact(): Promise<void> {
    await writeSnapshot(this.dir, this.snapshot());
    await this.fh.truncate(0);
    await this.fh.sync();
    this.bytes = 0;
  }

  /** Waits for queued lines, then closes. */
  async close(compact: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    if (compact) await this.compact().catch(() => undefined);
    await this.fh.close();
  }
}

async function writeSnapshot(dir: string, snap: Snapshot): Promise<void> {
  const tmp = join(dir, `${SNAPSHOT}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(snap));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, SNAPSHOT));
  // The rename itself must survive a crash before the journal is truncated.
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
