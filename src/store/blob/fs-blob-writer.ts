import { createHash } from 'node:crypto';
import {
  algorithmOf,
  Digester,
  ErrorCode,
  parseDigest,
  RegistryError,
  type Descriptor,
  type Digest,
  type DigestAlgorithm,
} from '../../oci/index.js';
import type { BlobWriter } from '../types.js';
import { errnoOf, type BlobFileHandle, type BlobFs } from './blob-fs.js';

/** Where a writer publishes to and how it hands its running hash back for a later resume(). */
export interface WriterHost {
  readonly fs: BlobFs;
  tempPath(id: string): string;
  blobPath(digest: Digest): string;
  /** The writer closed its file but the temp file stays, for a later resume(). */
  released(id: string): void;
  /** A fresh temp-file id, no other process knows of, to move a file to before it is hashed and published. */
  sealId(): string;
  /** The writer is gone for good (committed or cancelled); `fileId` is the temp file's id now (see sealId). */
  finished(id: string, fileId: string): void;
}

type State = 'open' | 'committed' | 'released' | 'cancelled';
const CHUNK = 1 << 20;
/**
 * Written bytes after which their flush to disk starts in the background. Without it a blob's data is
 * all still dirty when commit's fsync runs (the kernel starts writeback only at gigabytes or after 30 s),
 * and a client waiting for the last byte of a 1 GiB layer waited for the whole GiB to reach the disk.
 */
const FLUSH_EVERY = 32 << 20;

export class FsBlobWriter implements BlobWriter {
  private state: State = 'open';
  private tail: Promise<unknown> = Promise.resolve();
  private _size: number;
  private unflushed = 0;
  private flushing?: Promise<void>;
  /** A background flush failed: the data may not be on disk, and a later fsync may not say so again. */
  private flushError?: unknown;
  /** The digest the content was last checked against; any write clears it. */
  private verified?: Digest;
  /** The temp file's id: the writer's, until commit seals the file under a private one. */
  private fileId: string;

  /**
   * `digester`: the running hash of every byte of the file, computed by this writer as it wrote them all
   * (create()). undefined for a file opened from shared storage (resume(): another process, on a shared
   * volume another replica, may have written it): commit then moves the file out of everyone else's reach
   * and hashes the bytes actually in it.
   */
  constructor(
    readonly id: string,
    private readonly host: WriterHost,
    private fh: BlobFileHandle | undefined,
    private digester: Digester | undefined,
    size: number,
  ) {
    this._size = size;
    this.fileId = id;
  }

  get size(): number {
    return this._size;
  }

  /** Serialises write/commit/cancel/release so none sees another half done. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private handle(): BlobFileHandle {
    if (this.state !== 'open' && this.state !== 'committed') {
      throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} is ${this.state}`);
    }
    if (!this.fh) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} has no open file`);
    return this.fh;
  }

  /** An element that is an array of buffers is written with one writev: no copy to join them. */
  write(src: AsyncIterable<Uint8Array | readonly Uint8Array[]>, signal?: AbortSignal): Promise<number> {
    return this.exclusive(async () => {
      if (this.state !== 'open') throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} is ${this.state}`);
      const fh = this.handle();
      let appended = 0;
      const it = src[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await nextOrAbort(it, signal);
          if (next.done) break;
          const parts = isBufferList(next.value) ? next.value : [next.value];
          this.verified = undefined;
          // Hash while the thread pool writes (each costs about as much as the other), but keep the
          // hash of the file prefix only: a failed write rolls it back, so size and digest still agree.
          const written = writeAll(fh, parts, this._size);
          const before = this.digester?.copy();
          let n = 0;
          for (const p of parts) {
            this.digester?.update(p);
            n += p.byteLength;
          }
          try {
            await written;
          } catch (e) {
            this.digester = before;
            throw e;
          }
          this._size += n;
          appended += n;
          this.unflushed += n;
          if (this.unflushed >= FLUSH_EVERY && !this.flushing && !fh.bypassesCache) this.flushInBackground(fh);
        }
        return appended;
      } catch (e) {
        // A short write (ENOSPC) may leave bytes past `size`; cut them so a resume continues cleanly.
        await fh.truncate(this._size).catch(() => undefined);
        // Not awaited: return() queues behind a pending next() of a stalled source.
        if (typeof it.return === 'function') void Promise.resolve(it.return()).catch(() => undefined);
        throw e;
      }
    });
  }

  private flushInBackground(fh: BlobFileHandle): void {
    this.unflushed = 0;
    this.flushing = fh
      .datasync()
      .catch((e: unknown) => {
        this.flushError ??= e;
      })
      .finally(() => {
        this.flushing = undefined;
      });
  }

  async readAt(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const fh = this.handle();
    const end = Math.min(this._size, position + length, position + (into?.length ?? Infinity));
    if (position < 0 || end <= position) return Buffer.alloc(0);
    const buf = into ? into.subarray(0, end - position) : Buffer.allocUnsafe(end - position);
    return readFully(fh, buf, position);
  }

  verify(expected: Digest, size?: number): Promise<void> {
    return this.exclusive(async () => {
      if (this.state !== 'open') throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} is ${this.state}`);
      await this.check(parseDigest(expected), size);
    });
  }

  /**
   * Cuts the content back to its first `size` bytes (an upload drops bytes of a request that failed, so the
   * session holds exactly what its client was told). The running hash no longer matches: commit re-reads.
   */
  truncate(size: number): Promise<void> {
    return this.exclusive(async () => {
      if (this.state !== 'open') throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} is ${this.state}`);
      if (!Number.isSafeInteger(size) || size < 0 || size > this._size) throw new RangeError(`cannot truncate ${this._size} bytes to ${size}`);
      await this.handle().truncate(size);
      if (size === this._size) return;
      this._size = size;
      this.digester = undefined;
      this.verified = undefined;
    });
  }

  commit(expected: Digest, size?: number): Promise<Descriptor> {
    return this.exclusive(async () => {
      if (this.state !== 'open') throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} is ${this.state}`);
      const digest = parseDigest(expected);
      // A file others could write: from here on only this process has it (an open handle elsewhere aside,
      // which the upload lease keeps idle), and what is hashed below is what is published.
      if (!this.digester) await this.seal();
      const fh = await this.check(digest, size);
      await this.flushing;
      if (this.flushError !== undefined) throw this.flushError;
      await fh.sync();
      const target = this.host.blobPath(digest);
      const fs = this.host.fs;
      await fs.mkdir(target.slice(0, target.lastIndexOf('/')));
      // Identical content is stored once: the verified copy replaces whatever is there (atomically; readers keep
      // the file they opened), so a damaged file under this digest is repaired by the next good copy.
      await fs.rename(this.host.tempPath(this.fileId), target);
      this.state = 'committed';
      this.host.finished(this.id, this.fileId);
      return { mediaType: 'application/octet-stream', digest, size: this._size };
    });
  }

  /** Moves the temp file to a name only this writer knows: no later resume() anywhere opens it. */
  private async seal(): Promise<void> {
    const sealed = this.host.sealId();
    await this.host.fs.rename(this.host.tempPath(this.fileId), this.host.tempPath(sealed));
    this.fileId = sealed;
    this.verified = undefined;
  }

  /** Size and digest of what was written against the expected ones; discards on a mismatch. */
  private async check(digest: Digest, size: number | undefined): Promise<BlobFileHandle> {
    const fh = this.handle();
    if (size !== undefined && size !== this._size) {
      await this.discard();
      throw new RegistryError(ErrorCode.SIZE_INVALID, `blob size ${this._size} does not match the expected ${size}`, {
        detail: { expected: size, actual: this._size },
      });
    }
    // verify() then commit() hashes once (sha512 content is re-read from the file for it).
    if (this.verified === digest) return fh;
    const actual = await this.digestAs(algorithmOf(digest), fh);
    if (actual !== digest) {
      await this.discard();
      throw new RegistryError(ErrorCode.DIGEST_INVALID, undefined, { detail: { expected: digest, actual } });
    }
    this.verified = digest;
    return fh;
  }

  cancel(): Promise<void> {
    return this.exclusive(async () => {
      if (this.state === 'cancelled') return;
      const wasCommitted = this.state === 'committed';
      this.state = 'cancelled';
      await this.closeHandle();
      if (!wasCommitted) await this.removeTemp();
      this.host.finished(this.id, this.fileId);
    });
  }

  release(): Promise<void> {
    return this.exclusive(async () => {
      if (this.state === 'open') {
        this.state = 'released';
        await this.closeHandle();
        this.host.released(this.id);
      } else if (this.state === 'committed') {
        this.state = 'cancelled';
        await this.closeHandle();
      }
    });
  }

  private async digestAs(alg: DigestAlgorithm, fh: BlobFileHandle): Promise<Digest> {
    if (alg === this.digester?.algorithm) return this.digester.peek();
    // Only sha256 is hashed while writing (nearly every client uses it); other algorithms, and content this
    // writer did not hash all of itself, are read back from the file once.
    const h = createHash(alg);
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; pos < this._size; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, this._size - pos), pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return `${alg}:${h.digest('hex')}` as Digest;
  }

  private async discard(): Promise<void> {
    this.state = 'cancelled';
    await this.closeHandle();
    await this.removeTemp();
    this.host.finished(this.id, this.fileId);
  }

  private async closeHandle(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await this.flushing;
    if (fh) await fh.close().catch(() => undefined);
  }

  private async removeTemp(): Promise<void> {
    try {
      await this.host.fs.unlink(this.host.tempPath(this.fileId));
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw e;
    }
  }
}

function isBufferList(v: Uint8Array | readonly Uint8Array[]): v is readonly Uint8Array[] {
  return Array.isArray(v);
}

/** Writes every part, in order, from `position`: one write (or writev) per attempt, resuming after a short one. */
async function writeAll(fh: BlobFileHandle, parts: readonly Uint8Array[], position: number): Promise<void> {
  let rest = parts.filter((p) => p.byteLength > 0);
  while (rest.length > 0) {
    const { bytesWritten } = rest.length === 1 ? await fh.write(rest[0]!, 0, rest[0]!.byteLength, position) : await fh.writev(rest, position);
    position += bytesWritten;
    rest = dropFront(rest, bytesWritten);
  }
}

/** `parts` without their first `n` bytes. */
function dropFront(parts: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    if (n >= p.byteLength) {
      n -= p.byteLength;
      continue;
    }
    out.push(n > 0 ? p.subarray(n) : p);
    n = 0;
  }
  return out;
}

/** Next chunk, or the abort reason as soon as the signal fires (a stalled source must not pin the writer). */
/** Fills `buf` from `position` of the file; shorter only where the file ends. */
export async function readFully(fh: Pick<BlobFileHandle, 'read'>, buf: Buffer, position: number): Promise<Buffer> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return off === buf.length ? buf : buf.subarray(0, off);
}

export function nextOrAbort<T>(it: AsyncIterator<T>, signal?: AbortSignal): Promise<IteratorResult<T>> {
  if (!signal) return it.next();
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}
