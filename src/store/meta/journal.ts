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

/** One line on its way to the disk: who waits for it, and how its in-memory change is taken back. */
interface Entry {
  line: string;
  undo: () => void;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Append-only JSON-lines journal with group commit: lines queued while a write+fsync is running go out
 * together in the next one, and each append resolves only once its line is durable.
 *
 * Callers apply a change in memory when they append it (a check and its write stay in one tick) and hand
 * over how to undo it. When a write fails (ENOSPC, EIO), every change not yet durable is undone, newest
 * first, and its append rejected: the lines of the failed write, and those queued behind it (they were
 * decided on a state that now never was). Memory then holds exactly what the disk holds.
 */
export class Journal {
  private pending: Entry[] = [];
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

  /** Queues `op`, already applied in memory; `undo` takes it back should its line never become durable. */
  append(op: Op, undo: () => void): Promise<void> {
    if (this.closed) {
      undo();
      return Promise.reject(new Error('metadata store is closed'));
    }
    const line = `${JSON.stringify(op)}\n`;
    return new Promise((resolve, reject) => {
      this.pending.push({ line, undo, resolve, reject });
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
      const batch = this.pending;
      this.pending = [];
      const buf = Buffer.from(batch.map((e) => e.line).join(''));
      try {
        // Positional, so a failed (short) write is cut off below instead of gluing onto the next line.
        let off = 0;
        while (off < buf.length) off += (await this.fh.write(buf, off, buf.length - off, this.bytes + off)).bytesWritten;
        await this.fh.datasync();
        this.bytes += buf.length;
        for (const e of batch) e.resolve();
      } catch (e) {
        // In the same tick as the failure: no read sees a change the disk does not hold.
        const lost = [...batch, ...this.pending];
        this.pending = [];
        for (let i = lost.length - 1; i >= 0; i--) lost[i]!.undo();
        for (const l of lost) l.reject(e);
        await this.fh.truncate(this.bytes).catch(() => undefined);
        continue;
      }
      // Only with nothing queued is the in-memory state the durable one a snapshot may hold.
      if (this.bytes >= this.compactBytes && this.pending.length === 0) await this.compact().catch(() => undefined);
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
