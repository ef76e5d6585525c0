import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isDigest } from '../../oci/index.js';
import type { LinkRecord, RepoRecord, TagRecord } from '../types.js';
import { storedLink } from './link-record.js';
import type { KnownEntry } from './memo.js';

/**
 * A replica's last known tags, links and repositories on local disk (one JSON file), so that a replica
 * (re)started during a Redis outage still serves what it served before. Written whole and atomically:
 * temp file, fsync, rename, fsync of the directory.
 */
const VERSION = 1;

/** What the snapshot holds at most (the memo's own bound); older entries (least recently used) are left out. */
export const SNAPSHOT_MAX_ENTRIES = 10_000;

export async function writeSnapshot(path: string, entries: readonly KnownEntry[], takenAt: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const body = JSON.stringify({ version: VERSION, takenAt, entries: entries.slice(0, SNAPSHOT_MAX_ENTRIES) });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** The entries of a snapshot; none when there is no file. Entries of an unexpected shape are skipped. */
export async function readSnapshot(path: string): Promise<KnownEntry[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const doc = JSON.parse(text) as { version?: unknown; entries?: unknown };
  if (doc.version !== VERSION || !Array.isArray(doc.entries)) throw new Error(`${path}: not a version ${VERSION} snapshot`);
  const out: KnownEntry[] = [];
  for (const e of doc.entries.slice(0, SNAPSHOT_MAX_ENTRIES)) {
    const entry = known(e);
    if (entry) out.push(entry);
  }
  return out;
}

function known(e: unknown): KnownEntry | undefined {
  const x = e as Partial<Record<keyof KnownEntry, unknown>> | null;
  if (typeof x?.key !== 'string' || typeof x.at !== 'number' || !Number.isFinite(x.at)) return undefined;
  const v = x.value as Record<string, unknown> | null;
  if (typeof v !== 'object' || v === null) return undefined;
  const kind = x.key.slice(0, 2);
  if (kind === 't\u0000' && typeof v.digest === 'string' && isDigest(v.digest) && typeof v.mediaType === 'string' && typeof v.size === 'number') return { key: x.key, value: v as unknown as TagRecord, at: x.at };
  if (kind === 'l\u0000' && (v.kind === 'blob' || v.kind === 'manifest') && typeof v.size === 'number') return { key: x.key, value: storedLink(v as unknown as LinkRecord), at: x.at };
  if (kind === 'r\u0000' && typeof v.local === 'boolean' && typeof v.mirrored === 'boolean') return { key: x.key, value: v as unknown as RepoRecord, at: x.at };
  return undefined;
}

export interface SnapshotWriter {
  /** writes one more snapshot (the last, on shutdown) and stops */
  stop(): Promise<void>;
}

/**
 * Writes the memo's last known records to `path` every `everyMs` (0: only at stop). A failed write is
 * reported and the previous snapshot stays.
 */
export function startSnapshots(opts: {
  path: string;
  everyMs: number;
  entries: () => KnownEntry[];
  now?: () => number;
  onError?: (err: Error) => void;
}): SnapshotWriter {
  const now = opts.now ?? Date.now;
  let running: Promise<void> = Promise.resolve();
  const take = (): Promise<void> => {
    running = running.then(() => writeSnapshot(opts.path, opts.entries(), now()).catch((e: Error) => opts.onError?.(e)));
    return running;
  };
  const timer = opts.everyMs > 0 ? setInterval(() => void take(), opts.everyMs) : undefined;
  timer?.unref();
  return {
    async stop() {
      if (timer) clearInterval(timer);
      await take();
    },
  };
}
