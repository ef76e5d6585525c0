import { Readable } from 'node:stream';
import { Digester, ErrorCode, RegistryError, algorithmOf, type Descriptor, type Digest } from '../oci/index.js';
import type { BlobStore, BlobWriter, ByteRange } from '../store/types.js';
import type { Upstream } from '../upstream/types.js';
import { single } from './streams.js';

const READ_CHUNK = 256 * 1024;
/** Memory a degraded fetch (cache write failed) may hold for its slowest client before pausing the upstream. */
const DEGRADED_BUFFER = 8 * 1024 * 1024;

/** Most the upstream body buffers while the download is busy (writing, or keeping pace with its reader). */
const BATCH = 1 << 20;
/**
 * Bytes received are handed to the file once this many have gathered (or the body ends); readers have them
 * from memory at once. Each write is a thread-pool round trip, and waking a pool thread is dear on a
 * virtual machine: writing whatever had arrived meanwhile (184 KiB on average) cost wharf's main thread
 * more than its hashing in a cold pull of many small layers.
 */
const WRITE_BATCH = 1 << 20;
/** The newest bytes of a download kept in memory too: readers that keep up are served without a file read. */
const RECENT = 4 * BATCH;
/**
 * A download waits for its fastest reader when it is more than this ahead of it, so that reader stays within
 * the recent bytes (the next batch, up to about BATCH, must still leave it there).
 */
const PACE_LEAD = 2 * BATCH;
/** A fastest reader that has not moved for this long no longer holds the download back (default). */
const PACE_PATIENCE_MS = 1000;

/**
 * The body's chunks in batches: whatever arrived while the previous batch was being written (the body
 * pauses at 1 MiB waiting), never joined. One file write (writev) and one wake-up of the readers per batch
 * instead of per socket read, without waiting for bytes that have not arrived, and without the copy and
 * the 1 MiB allocations that Readable.read() makes to join what it has buffered.
 */
export async function* batched(body: Readable): AsyncGenerator<Buffer[]> {
  // Failed or closed before we listened: its 'error' and 'close' have been and gone.
  if (body.errored) throw body.errored;
  if (body.destroyed) throw new Error('upstream body closed early');
  let parts: Buffer[] = [];
  let bytes = 0;
  let ended = false;
  let failed: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Buffer): void => {
    parts.push(chunk);
    bytes += chunk.length;
    if (bytes >= BATCH) body.pause();
    poke();
  };
  const onEnd = (): void => {
    ended = true;
    poke();
  };
  const onError = (error: unknown): void => {
    failed ??= { error };
    poke();
  };
  const onClose = (): void => {
    if (!ended) onError(new Error('upstream body closed early'));
  };
  body.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  try {
    for (;;) {
      if (parts.length > 0) {
        const out = parts;
        parts = [];
        bytes = 0;
        body.resume();
        yield out;
        continue;
      }
      if (failed) throw failed.error;
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    body.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    if (!ended) body.destroy();
  }
}

export interface BlobFetchOptions {
  store: BlobStore;
  /** a download needs nothing else of its upstream */
  upstream: Pick<Upstream, 'blob'>;
  repoPath: string;
  digest: Digest;
  /** the whole fetch (and so the cache write) gives up after this long */
  timeoutMs: number;
  /** extra upstream requests with Range after a body breaks */
  resumeAttempts: number;
  onBytes?: (n: number) => void;
  /** the cache write failed (disk full, I/O error): clients are still served, nothing is kept */
  onCacheWriteError?: (err: Error) => void;
  /** how long the download waits for its fastest reader to move before it stops keeping pace (default 1 s) */
  pacePatienceMs?: number;
}

type State = 'running' | 'committed' | 'passed' | 'failed';

/**
 * One upstream download of one blob, shared by every client that asks for it meanwhile.
 *
 * Bytes go to a temp file; the newest few MiB are kept in memory too. The download keeps pace with its
 * fastest client, which is served from memory; slower clients read the file at their own pace, so none
 * holds the others back and memory stays flat. The last byte is held back until the digest is verified:
 * a client of a corrupted upstream body is cut off before it has a complete wrong blob. Clients hanging
 * up never cancel the download: it has its own timeout.
 *
 * If the cache write fails (ENOSPC), the fetch degrades to a pass-through: bytes after the failure are
 * kept in a bounded memory window for the clients already reading, the upstream is paused for the
 * slowest of them, and nothing is cached.
 */
export class BlobFetch {
  /** bytes in the temp file (or, once degraded, received: the rest are in memory) */
  private written = 0;
  /** bytes readers may have: `written`, plus those received and not yet in the file (read from memory) */
  private available = 0;
  /** received, among the recent bytes, not yet handed to the file (normal mode) */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** full size, once the upstream has said */
  size?: number;
  private writer?: BlobWriter;
  private state: State = 'running';
  /** the download is complete and matches its digest (commit may still be running) */
  private verified = false;
  private error?: Error;
  private readers = 0;
  private closed = false;
  private released = false;
  private wake: Array<() => void> = [];
  private readonly abort = new AbortController();
  /** degraded mode only: the writer verifies (and hashes) everything it writes, so a second hash is wasted work */
  private digester?: Digester;
  /** degraded mode: bytes from `base` on, in order */
  private mem?: { base: number; chunks: Buffer[] };
  /** normal mode: the newest bytes (about RECENT, plus those not yet in the temp file), from `base` on */
  private readonly recent: { base: number; chunks: Buffer[]; bytes: number } = { base: 0, chunks: [], bytes: 0 };
  private readonly positions = new Set<Cursor>();
  /** the download keeps pace with its fastest reader (until one keeps it waiting too long) */
  private paced = true;
  /** resolves when the blob is committed (or rejects when the fetch failed or could not be cached) */
  readonly done: Promise<Descriptor>;
  /** resolves once the upstream answered (size known) or the fetch failed */
  readonly started: Promise<void>;
  private markStarted!: () => void;

  constructor(private readonly opts: BlobFetchOptions) {
    this.started = new Promise((resolve) => (this.markStarted = resolve));
    this.done = this.run();
    this.done.catch(() => {}); // observed through readers and callers
  }

  /** bytes received from the upstream so far (readers may have them; the file gets them in batches) */
  get received(): number {
    return this.available;
  }

  /** clients reading the download now (a peer replica streaming from it counts as one) */
  get clients(): number {
    return this.readers;
  }

  get failed(): Error | undefined {
    return this.state === 'failed' ? this.error : undefined;
  }

  /** true once the content matched its digest: its clients may have every byte while the commit runs. */
  get proven(): boolean {
    return this.verified;
  }

  /** true once the cache write failed: new clients should not join (early bytes may be gone). */
  get degraded(): boolean {
    return this.mem !== undefined;
  }

  private async run(): Promise<Descriptor> {
    const { store, upstream, repoPath, digest } = this.opts;
    const timer = setTimeout(() => this.abort.abort(new RegistryError(ErrorCode.UNAVAILABLE, 'upstream fetch timed out')), this.opts.timeoutMs);
    timer.unref?.();
    // Keeping pace with a slow client must never cost the download its time limit.
    const unpace = setTimeout(() => this.stopPacing(), this.opts.timeoutMs / 2);
    unpace.unref?.();
    // The temp file is created while the upstream request is on its way: neither waits for the other.
    // Its file bypasses the page cache where the store allows it: clients read the bytes from memory.
    const creating = store.create(undefined, { direct: true, digest });
    creating.catch(() => {}); // seen below, or cancelled if the download fails first
    try {
      await this.download(upstream, repoPath, digest, creating);
      this.writer ??= await creating; // an empty body never asked for it
      if (this.mem) {
        if (this.digester!.peek() !== digest) {
          throw new RegistryError(ErrorCode.DIGEST_INVALID, 'upstream content does not match its digest', { detail: { digest } });
        }
        this.state = 'passed';
        throw new RegistryError(ErrorCode.UNAVAILABLE, 'blob served but not cached: the cache write failed');
      }
      await this.writer.verify(digest, this.size);
      // The content is proven: clients get their last byte now, not after the fsync and rename that make
      // it a cache entry (on a busy disk those took longer than the transfer of a small layer).
      this.verified = true;
      this.notify();
      const desc = await this.writer.commit(digest, this.size);
      this.state = 'committed';
      return desc;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (this.verified && this.state === 'running') {
        // Publishing failed after the content was proven: readers finish from the temp file, nothing is kept.
        this.state = 'passed';
        this.opts.onCacheWriteError?.(err);
      } else if (this.state !== 'passed') {
        this.state = 'failed';
        this.error = err;
      }
      if (!this.mem && this.state !== 'passed') await (this.writer ?? (await creating.catch(() => undefined)))?.cancel().catch(() => {});
      throw e;
    } finally {
      clearTimeout(timer);
      clearTimeout(unpace);
      this.markStarted();
      this.notify();
      void this.maybeRelease();
    }
  }

  private async download(upstream: Pick<Upstream, 'blob'>, repoPath: string, digest: Digest, creating: Promise<BlobWriter>): Promise<void> {
    let attempts = 0;
    for (;;) {
      try {
        const res = await upstream.blob(repoPath, digest, this.abort.signal, this.written);
        // batched() reads the body's errors; this one only keeps an error that comes before it listens
        // (while the temp file is still being created) from being an uncaught 'error' event.
        res.body.on('error', () => {});
        if (!this.writer) {
          try {
            this.writer = await creating;
          } catch (e) {
            res.body.destroy();
            throw new NoTempFile(e);
          }
        }
        if (this.size === undefined && res.size !== undefined) this.size = res.size;
        this.markStarted();
        // A server that ignored our Range sends the whole blob again: skip what we already have.
        let skip = this.written - res.offset;
        for await (const batch of batched(res.body)) {
          let parts = batch;
          if (skip > 0) {
            parts = [];
            for (const c of batch) {
              if (c.length <= skip) skip -= c.length;
              else {
                parts.push(skip > 0 ? c.subarray(skip) : c);
                skip = 0;
              }
            }
          }
          if (parts.length > 0) await this.append(parts);
        }
        await this.flush();
        if (this.size !== undefined && this.written < this.size) throw new Error('upstream body ended early');
        return;
      } catch (e) {
        if (e instanceof NoTempFile) throw e.cause;
        // What arrived before the break goes to the file first: a resume asks for the bytes after it.
        await this.flush();
        if (this.abort.signal.aborted || e instanceof RegistryError || attempts >= this.opts.resumeAttempts) throw e;
        if (this.written === 0 && this.size === undefined) throw e;
        attempts++;
      }
    }
  }

  private async append(parts: Buffer[]): Promise<void> {
    let n = 0;
    for (const p of parts) n += p.length;
    if (this.mem) return this.appendDegraded(parts, n);
    await this.keepPace();
    // Readers take these from memory at once; the file gets them in WRITE_BATCH pieces.
    for (const p of parts) {
      this.remember(p);
      this.pending.push(p);
    }
    this.pendingBytes += n;
    this.available = this.written + this.pendingBytes;
    this.opts.onBytes?.(n);
    this.notify();
    if (this.pendingBytes >= WRITE_BATCH) await this.flush();
  }

  /** Hands the pending bytes to the file; a failed write degrades the fetch to a pass-through. */
  private async flush(): Promise<void> {
    if (this.pendingBytes === 0 || this.mem) return;
    const parts = this.pending;
    const n = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      await this.writer!.write(single(parts), this.abort.signal);
    } catch (e) {
      if (this.abort.signal.aborted) throw e;
      await this.degrade(e, parts); // these bytes open the memory window
    }
    this.written += n;
    this.available = this.written + this.pendingBytes;
    this.notify();
    if (this.mem && this.readers === 0) throw noClientLeft();
  }

  /** After a failed cache write: verify and keep the bytes in memory for the readers, at the slowest one's pace. */
  private async appendDegraded(parts: Buffer[], n: number): Promise<void> {
    const mem = this.mem!;
    for (const p of parts) this.digester!.update(p);
    mem.chunks.push(...parts);
    if (this.readers === 0) throw noClientLeft();
    this.written += n;
    this.available = this.written;
    this.opts.onBytes?.(n);
    this.notify();
    while (this.mem && this.buffered() > DEGRADED_BUFFER && this.readers > 0) await new Promise<void>((r) => this.wake.push(r));
  }

  /**
   * Waits while the download is more than PACE_LEAD ahead of its fastest reader (among those that still want
   * bytes past it): that reader then gets every byte from memory, and the file is only written, never read
   * back. A reader that joined late (behind a prefetch) reads the file until it has caught up, then from
   * memory. One that does not move for `pacePatienceMs` ends the pacing (a stalled client must not hold a
   * download that others, or the cache, are waiting for).
   */
  private async keepPace(): Promise<void> {
    while (this.paced && this.readers > 0 && !this.abort.signal.aborted) {
      let fastest = -1;
      for (const c of this.positions) if (c.end === undefined || c.end > this.available) fastest = Math.max(fastest, c.pos);
      if (fastest < 0 || this.available - fastest <= PACE_LEAD) return;
      if (!(await this.readerMoves(this.opts.pacePatienceMs ?? PACE_PATIENCE_MS))) this.stopPacing();
    }
  }

  /** true when a reader moved (or one ended, or the fetch changed state) within `ms`. */
  private readerMoves(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.wake.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private stopPacing(): void {
    this.paced = false;
    this.notify();
  }

  /**
   * Keeps `chunk` (about to be written after the recent ones) among the recent bytes, dropping the oldest
   * beyond RECENT, but never one not yet in the file: readers behind the recent bytes read the file.
   */
  private remember(chunk: Buffer): void {
    const r = this.recent;
    if (r.chunks.length === 0) r.base = this.written;
    r.chunks.push(chunk);
    r.bytes += chunk.length;
    while (r.bytes - r.chunks[0]!.length >= RECENT && r.base + r.chunks[0]!.length <= this.written) {
      const old = r.chunks.shift()!;
      r.base += old.length;
      r.bytes -= old.length;
    }
  }

  /**
   * The cache write failed: verify from here on ourselves, starting with what reached the temp file. The
   * batch whose write failed (`pending`) opens the memory window at once: readers were offered it already.
   */
  private async degrade(e: unknown, pending: Buffer[]): Promise<void> {
    const digester = new Digester(algorithmOf(this.opts.digest));
    for (let pos = 0; pos < this.written; ) {
      const buf = await this.writer!.readAt(pos, Math.min(READ_CHUNK * 4, this.written - pos));
      if (buf.length === 0) throw new Error('temp file shorter than what was written');
      digester.update(buf);
      pos += buf.length;
    }
    for (const p of pending) digester.update(p);
    this.digester = digester;
    this.mem = { base: this.written, chunks: [...pending] };
    this.opts.onCacheWriteError?.(e instanceof Error ? e : new Error(String(e)));
  }

  /** Degraded mode: drops the memory no reader needs any more; returns what is still held. */
  private buffered(): number {
    const mem = this.mem!;
    let min = Infinity;
    for (const p of this.positions) min = Math.min(min, p.pos);
    while (mem.chunks.length > 0 && mem.base + mem.chunks[0]!.length <= min) mem.base += mem.chunks.shift()!.length;
    return this.written - mem.base;
  }

  private async readRange(pos: number, len: number, into?: Buffer): Promise<Buffer> {
    const mem = this.mem;
    if (!mem) {
      const r = this.recent;
      if (r.chunks.length > 0 && pos >= r.base) return sliceOf(r, pos, len, into);
      return this.writer!.readAt(pos, len, into);
    }
    if (pos < mem.base) return this.writer!.readAt(pos, Math.min(len, mem.base - pos), into);
    return sliceOf(mem, pos, len, into);
  }


  /** A client's view of the blob (or a range of it), delivered as the download progresses. */
  reader(range?: ByteRange): Readable {
    // Counted from now, not from the first read: a degraded download must not give up on a client whose
    // response has not started streaming yet. 'close' fires however the stream ends, even unread.
    this.readers++;
    const stream = new FetchReader(this, range);
    this.positions.add(stream.cursor);
    stream.once('close', () => {
      this.readers--;
      this.positions.delete(stream.cursor);
      this.notify();
      void this.maybeRelease();
    });
    return stream;
  }

  /**
   * The next bytes for a reader at `cursor` (into `into` when given), or undefined at the end; waits
   * while the download has nothing new for it.
   */
  async next(cursor: Cursor, range: ByteRange | undefined, into?: Buffer): Promise<Buffer | { rest: Readable } | undefined> {
    for (;;) {
      if (this.state === 'failed') throw this.error;
      const end = range ? range.end + 1 : this.size;
      const complete = this.verified || this.state === 'committed' || this.state === 'passed';
      if (end !== undefined && cursor.pos >= end && (range || complete)) return undefined;
      if (this.released) {
        // The temp file handle is gone, which happens only after commit: the rest is in the store.
        if (end !== undefined && cursor.pos >= end) return undefined;
        const rest = await this.opts.store.read(this.opts.digest, { start: cursor.pos, end: (end ?? this.written) - 1 });
        if (!rest) throw new RegistryError(ErrorCode.BLOB_UNKNOWN, 'blob vanished after commit');
        return { rest };
      }
      // Hold back the final byte until the digest has been verified.
      const available = complete ? this.available : Math.max(0, this.available - 1);
      const limit = end === undefined ? available : Math.min(available, end);
      if (cursor.pos < limit) {
        const buf = await this.readRange(cursor.pos, Math.min(limit - cursor.pos, into?.length ?? READ_CHUNK), into);
        cursor.pos += buf.length;
        this.notify(); // a paused degraded download may go on
        return buf;
      }
      if (complete) return undefined;
      await new Promise<void>((resolve) => this.wake.push(resolve));
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  /** No new readers will join (the fetch left the in-flight table): the file may go once the last reader ends. */
  close(): void {
    this.closed = true;
    void this.maybeRelease();
  }

  private async maybeRelease(): Promise<void> {
    if (!this.closed || this.readers > 0 || this.state === 'running' || this.released) return;
    this.released = true;
    this.recent.chunks = [];
    if (this.state === 'committed') await this.writer?.release().catch(() => {});
    else await this.writer?.cancel().catch(() => {});
  }
}

/**
 * One client's stream of a shared download. Besides being a Readable, it can fill buffers its consumer
 * owns (`readInto`), so a response writer can reuse two buffers for the whole blob.
 */
class FetchReader extends Readable {
  readonly cursor: Cursor;
  /** After commit and release: the rest of the blob, from the store. */
  private rest?: Readable;

  constructor(
    private readonly fetch: BlobFetch,
    private readonly range: ByteRange | undefined,
  ) {
    super({ highWaterMark: READ_CHUNK });
    this.cursor = { pos: range?.start ?? 0, end: range ? range.end + 1 : undefined };
  }

  /** Fills `buf` with the next bytes; 0 at the end. */
  async readInto(buf: Buffer): Promise<number> {
    if (this.rest) return fillFrom(this.rest, buf);
    const got = await this.fetch.next(this.cursor, this.range, buf);
    if (got === undefined) return 0;
    if ('rest' in got) {
      this.rest = got.rest;
      return fillFrom(this.rest, buf);
    }
    return got.length;
  }

  override _read(): void {
    const read = this.rest ? this.restChunk() : this.fetch.next(this.cursor, this.range);
    read.then(
      (got) => {
        if (got === undefined) return this.push(null);
        if (Buffer.isBuffer(got)) return this.push(got);
        this.rest = got.rest;
        this._read();
      },
      (e: unknown) => this.destroy(e as Error),
    );
  }

  private async restChunk(): Promise<Buffer | undefined> {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    const n = await fillFrom(this.rest!, buf);
    return n === 0 ? undefined : buf.subarray(0, n);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.rest?.destroy();
    cb(err);
  }
}

/** Where a reader is, and where its range ends (exclusive; undefined: the blob's end). */
interface Cursor {
  pos: number;
  readonly end: number | undefined;
}

/** A degraded download (its cache write failed) goes on only for clients still reading it. */
function noClientLeft(): RegistryError {
  return new RegistryError(ErrorCode.UNAVAILABLE, 'cache write failed and no client is waiting');
}

/** The cache could not even create its temp file: nothing to resume, the fetch fails as it is. */
class NoTempFile extends Error {
  constructor(override readonly cause: unknown) {
    super('could not create the temp file');
  }
}

/**
 * Bytes at `pos` (at most `len`) from a run of chunks starting at `base`: a view of one chunk, or, with
 * `into`, as many chunks as fit copied into it.
 */
function sliceOf(run: { base: number; chunks: Buffer[] }, pos: number, len: number, into?: Buffer): Buffer {
  let off = run.base;
  let filled = 0;
  const want = into ? Math.min(len, into.length) : len;
  for (const c of run.chunks) {
    if (pos < off + c.length) {
      const part = c.subarray(pos - off, Math.min(c.length, pos - off + want - filled));
      if (!into) return part;
      filled += part.copy(into, filled);
      pos += part.length;
      if (filled >= want) break;
    }
    off += c.length;
  }
  if (into && filled > 0) return into.subarray(0, filled);
  throw new Error('fetch: bytes no longer buffered');
}

/** Reads from a store stream into `buf`: directly when it can fill buffers (a file), else by copying a chunk. */
async function fillFrom(src: Readable, buf: Buffer): Promise<number> {
  const fillable = src as Readable & { readInto?: (b: Buffer) => Promise<number> };
  if (typeof fillable.readInto === 'function') return fillable.readInto(buf);
  for (;;) {
    const chunk = src.read(Math.min(buf.length, src.readableLength || buf.length)) as Buffer | null;
    if (chunk !== null) return chunk.copy(buf);
    if (src.readableEnded || src.destroyed) return 0;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        src.off('readable', done).off('end', done).off('error', fail);
        resolve();
      };
      const fail = (e: Error): void => {
        src.off('readable', done).off('end', done).off('error', fail);
        reject(e);
      };
      src.on('readable', done).on('end', done).on('error', fail);
    });
  }
}
