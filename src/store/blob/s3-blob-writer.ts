import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { unlink } from 'node:fs/promises';
import {
  algorithmOf,
  Digester,
  ErrorCode,
  parseDigest,
  RegistryError,
  type Descriptor,
  type Digest,
} from '../../oci/index.js';
import type { BlobWriter } from '../types.js';
import { nextOrAbort, readFully } from './fs-blob-writer.js';
import type { S3Bucket } from './s3-bucket.js';

/** What a writer needs from its store: where things go in the bucket and on the local disk. */
export interface S3WriterHost {
  readonly bucket: S3Bucket;
  readonly partSize: number;
  blobKey(digest: Digest): string;
  /** `<prefix>uploads/<id>/`: the session's stored segments and its marker */
  sessionPrefix(id: string): string;
  segmentKey(id: string, offset: number): string;
  markerKey(id: string): string;
  /** The writer is gone for good (its local file closed or removed). */
  finished(localPath: string): void;
}

/** A stored piece of an upload session: bytes [offset, offset + size). */
export interface Segment {
  key: string;
  offset: number;
  size: number;
}

interface Multipart {
  key: string;
  uploadId: string;
  parts: Array<{ PartNumber: number; ETag: string }>;
  /** local-file bytes already sent as parts */
  sent: number;
  /** the part upload running now, if any */
  pending?: Promise<void>;
}

type State = 'open' | 'committed' | 'released' | 'cancelled';
const CHUNK = 1 << 20;

/**
 * One blob being written to object storage. The bytes of this writer's lifetime go to a local temp file
 * (clients of a running download read them back from it); bytes stored by earlier requests (an upload session
 * resumed, maybe on another replica) are segments in the bucket.
 *
 * A fresh writer told its digest up front (a download) streams into a multipart upload for the final key as
 * it goes, hashing every byte itself, and completes it only when digest and size match. Any other writer
 * publishes at commit by reading back what is stored, hashing it and uploading exactly those bytes to the
 * final key (parts of partSize), completing only on a match: a resumed session never trusts a hash it did not
 * compute from the stored bytes, and nothing partial or wrong is ever visible under a digest.
 */
export class S3BlobWriter implements BlobWriter {
  private state: State = 'open';
  private tail: Promise<unknown> = Promise.resolve();
  private local = 0;
  private verified?: Digest;
  private mpu?: Multipart;

  constructor(
    readonly id: string,
    private readonly host: S3WriterHost,
    private readonly localPath: string,
    private fh: FileHandle | undefined,
    /** bytes stored before this writer, in order */
    private segments: Segment[],
    /** running hash of every byte from 0: only for a writer that wrote them all */
    private digester: Digester | undefined,
    /** the digest this writer expects to publish (a download), to stream into its final key */
    private readonly hint: Digest | undefined,
  ) {}

  private get base(): number {
    const last = this.segments[this.segments.length - 1];
    return last ? last.offset + last.size : 0;
  }

  get size(): number {
    return this.base + this.local;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private assertOpen(): FileHandle {
    if (this.state !== 'open' || !this.fh) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} is ${this.state}`);
    return this.fh;
  }

  write(src: AsyncIterable<Uint8Array | readonly Uint8Array[]>, signal?: AbortSignal): Promise<number> {
    return this.exclusive(async () => {
      const fh = this.assertOpen();
      let appended = 0;
      const it = src[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await nextOrAbort(it, signal);
          if (next.done) break;
          const item = next.value;
          const parts = Array.isArray(item) ? (item as readonly Uint8Array[]) : [item as Uint8Array];
          this.verified = undefined;
          const before = this.digester?.copy();
          try {
            for (const p of parts) {
              let off = 0;
              while (off < p.byteLength) {
                const { bytesWritten } = await fh.write(p, off, p.byteLength - off, this.local + off);
                off += bytesWritten;
              }
              this.digester?.update(p);
              this.local += p.byteLength;
              appended += p.byteLength;
            }
          } catch (e) {
            this.digester = before;
            throw e;
          }
          this.maybeSendPart();
        }
      } catch (e) {
        await fh.truncate(this.local).catch(() => undefined);
        // Not awaited: return() queues behind a pending next() of a stalled source.
        if (typeof it.return === 'function') void Promise.resolve(it.return()).catch(() => undefined);
        // What was written is kept, as on disk (the caller decides whether to cut it back).
        if (!this.hint) await this.persist().catch(() => undefined);
        throw e;
      }
      // An upload's bytes are in the bucket when write() resolves: the session may then say it holds them, and
      // any replica may continue it. (A download, told its digest, streams into its multipart upload instead.)
      if (!this.hint) await this.persist();
      return appended;
    });
  }

  /**
   * Moves the local file's bytes into the bucket as segments of the session (at most partSize each, so memory
   * stays bounded whatever a request sent). All or nothing: on a failed PUT the new segments go again.
   */
  private async persist(): Promise<void> {
    const fh = this.fh;
    if (!fh || this.local === 0) return;
    const added: Segment[] = [];
    try {
      for (let pos = 0; pos < this.local; ) {
        const offset = this.base;
        const body = await this.readLocal(pos, this.host.partSize);
        const key = this.host.segmentKey(this.id, offset);
        await this.host.bucket.put(key, body);
        const seg = { key, offset, size: body.length };
        added.push(seg);
        this.segments.push(seg);
        pos += body.length;
      }
    } catch (e) {
      this.segments = this.segments.filter((x) => !added.includes(x));
      await this.host.bucket.deleteMany(added.map((x) => x.key)).catch(() => undefined);
      throw e;
    }
    this.stored = true;
    await fh.truncate(0);
    this.local = 0;
  }

  /** Starts a multipart upload for the hinted key and sends full parts as the local file grows (one at a time). */
  private maybeSendPart(): void {
    if (!this.hint || this.segments.length > 0 || !this.digester) return;
    const mpu = this.mpu;
    if (mpu?.pending || this.creating) return;
    if (this.local - (mpu?.sent ?? 0) < this.host.partSize) return;
    const run = async (): Promise<void> => {
      let m = this.mpu;
      if (!m) {
        const key = this.host.blobKey(this.hint!);
        m = this.mpu = { key, uploadId: await this.host.bucket.createMultipart(key), parts: [], sent: 0 };
      }
      while (this.state === 'open' && this.local - m.sent >= this.host.partSize) {
        const body = await this.readLocal(m.sent, this.host.partSize);
        const n = m.parts.length + 1;
        const etag = await this.host.bucket.uploadPart(m.key, m.uploadId, n, body);
        m.parts.push({ PartNumber: n, ETag: etag });
        m.sent += body.length;
      }
    };
    const pending = run().catch(async () => {
      // Streaming failed: commit falls back to uploading from the local file.
      await this.dropMultipart();
    });
    if (this.mpu) this.mpu.pending = pending;
    else {
      // The CreateMultipartUpload is in flight: park the promise where dropMultipart and commit find it.
      this.creating = pending;
    }
    void pending.finally(() => {
      if (this.mpu?.pending === pending) this.mpu.pending = undefined;
      if (this.creating === pending) this.creating = undefined;
    });
  }

  private creating?: Promise<void>;

  private async settleParts(): Promise<void> {
    await this.creating;
    await this.mpu?.pending;
  }

  private async dropMultipart(): Promise<void> {
    const m = this.mpu;
    this.mpu = undefined;
    if (m) await this.host.bucket.abortMultipart(m.key, m.uploadId).catch(() => undefined);
  }

  private async readLocal(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const fh = this.fh;
    if (!fh) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `blob writer ${this.id} has no open file`);
    const end = Math.min(this.local, position + length);
    if (end <= position) return Buffer.alloc(0);
    const buf = into ? into.subarray(0, end - position) : Buffer.allocUnsafe(end - position);
    return readFully(fh, buf, position);
  }

  async readAt(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const limit = Math.min(length, into?.length ?? Infinity);
    if (position < 0 || limit <= 0 || position >= this.size) return Buffer.alloc(0);
    const base = this.base;
    if (position >= base) return this.readLocal(position - base, limit, into);
    const out: Buffer[] = [];
    let pos = position;
    const end = Math.min(this.size, position + limit);
    while (pos < end) {
      if (pos >= base) {
        out.push(await this.readLocal(pos - base, end - pos));
        break;
      }
      const seg = this.segments.find((s) => s.offset <= pos && pos < s.offset + s.size)!;
      const last = Math.min(end, seg.offset + seg.size) - 1;
      const b = await this.host.bucket.getBytes(seg.key, { start: pos - seg.offset, end: last - seg.offset });
      if (!b || b.length === 0) break;
      out.push(b);
      pos += b.length;
    }
    const all = Buffer.concat(out);
    if (!into) return all;
    all.copy(into);
    return into.subarray(0, all.length);
  }

  verify(expected: Digest, size?: number): Promise<void> {
    return this.exclusive(async () => {
      this.assertOpen();
      await this.check(parseDigest(expected), size);
    });
  }

  truncate(size: number): Promise<void> {
    return this.exclusive(async () => {
      const fh = this.assertOpen();
      if (!Number.isSafeInteger(size) || size < 0 || size > this.size) throw new RangeError(`cannot truncate ${this.size} bytes to ${size}`);
      if (size === this.size) return;
      this.digester = undefined;
      this.verified = undefined;
      await this.settleParts();
      await this.dropMultipart();
      const base = this.base;
      if (size >= base) {
        await fh.truncate(size - base);
        this.local = size - base;
        return;
      }
      // Stored segments past the cut go; one straddling it is rewritten shorter.
      await fh.truncate(0);
      this.local = 0;
      const keep = this.segments.filter((s) => s.offset < size);
      const gone = this.segments.filter((s) => s.offset >= size).map((s) => s.key);
      const last = keep[keep.length - 1];
      if (last && last.offset + last.size > size) {
        const head = await this.host.bucket.getBytes(last.key, { start: 0, end: size - last.offset - 1 });
        if (!head) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `upload ${this.id} lost a stored segment`);
        await this.host.bucket.put(last.key, head);
        last.size = head.length;
      }
      if (gone.length > 0) await this.host.bucket.deleteMany(gone);
      this.segments = keep;
    });
  }

  commit(expected: Digest, size?: number): Promise<Descriptor> {
    return this.exclusive(async () => {
      this.assertOpen();
      const digest = parseDigest(expected);
      await this.settleParts();
      const m = this.mpu;
      if (m && m.key === this.host.blobKey(digest) && this.digester?.algorithm === algorithmOf(digest)) {
        await this.check(digest, size);
        // The hash is this writer's own, of every byte: send the rest and complete.
        const rest = await this.readLocal(m.sent, this.local - m.sent);
        try {
          if (rest.length > 0 || m.parts.length === 0) {
            const n = m.parts.length + 1;
            m.parts.push({ PartNumber: n, ETag: await this.host.bucket.uploadPart(m.key, m.uploadId, n, rest) });
          }
          await this.host.bucket.completeMultipart(m.key, m.uploadId, m.parts);
          this.mpu = undefined;
        } catch (e) {
          await this.dropMultipart();
          throw e;
        }
      } else {
        await this.dropMultipart();
        if (size !== undefined && size !== this.size) await this.mismatch(ErrorCode.SIZE_INVALID, size);
        await this.publishStored(digest);
      }
      this.state = 'committed';
      await this.removeSession();
      return { mediaType: 'application/octet-stream', digest, size: this.size };
    });
  }

  /**
   * Reads every stored byte (segments, then the local file) once, hashing it and uploading it to the final key;
   * the object appears only if the hash matches. Small blobs are hashed first and put in one request.
   */
  private async publishStored(digest: Digest): Promise<void> {
    const key = this.host.blobKey(digest);
    const hash = createHash(algorithmOf(digest));
    const partSize = this.host.partSize;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let mpu: { uploadId: string; parts: Array<{ PartNumber: number; ETag: string }> } | undefined;
    const flush = async (final: boolean): Promise<void> => {
      while (pendingBytes >= partSize || (final && mpu && pendingBytes > 0)) {
        const all = Buffer.concat(pending);
        const body = all.subarray(0, Math.min(partSize, all.length));
        pending = body.length < all.length ? [all.subarray(body.length)] : [];
        pendingBytes = all.length - body.length;
        mpu ??= { uploadId: await this.host.bucket.createMultipart(key), parts: [] };
        const n = mpu.parts.length + 1;
        mpu.parts.push({ PartNumber: n, ETag: await this.host.bucket.uploadPart(key, mpu.uploadId, n, body) });
      }
    };
    try {
      for await (const chunk of this.storedBytes()) {
        hash.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        await flush(false);
      }
      const actual = `${algorithmOf(digest)}:${hash.digest('hex')}` as Digest;
      if (actual !== digest) {
        if (mpu) await this.host.bucket.abortMultipart(key, mpu.uploadId);
        mpu = undefined;
        await this.discard();
        throw new RegistryError(ErrorCode.DIGEST_INVALID, undefined, { detail: { expected: digest, actual } });
      }
      if (mpu) {
        await flush(true);
        await this.host.bucket.completeMultipart(key, mpu.uploadId, mpu.parts);
      } else {
        await this.host.bucket.put(key, Buffer.concat(pending));
      }
    } catch (e) {
      if (mpu) await this.host.bucket.abortMultipart(key, mpu.uploadId).catch(() => undefined);
      throw e;
    }
  }

  /** Every byte of the blob as stored: the segments from the bucket, then the local file. */
  private async *storedBytes(): AsyncIterable<Buffer> {
    for (const seg of this.segments) {
      const r = await this.host.bucket.get(seg.key);
      if (!r) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `upload ${this.id} lost a stored segment`);
      let got = 0;
      for await (const c of r.body) {
        const b = c as Buffer;
        got += b.length;
        yield b;
      }
      if (got !== seg.size) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, `upload ${this.id}: a stored segment changed while it was published`);
    }
    for (let pos = 0; pos < this.local; pos += CHUNK) yield await this.readLocal(pos, CHUNK);
  }

  /** Size and digest against the expected ones (the running hash, or the stored bytes re-read); discards on a mismatch. */
  private async check(digest: Digest, size: number | undefined): Promise<void> {
    if (size !== undefined && size !== this.size) await this.mismatch(ErrorCode.SIZE_INVALID, size);
    if (this.verified === digest) return;
    let actual: Digest;
    if (this.digester && this.digester.algorithm === algorithmOf(digest) && this.segments.length === 0) actual = this.digester.peek();
    else {
      const h = createHash(algorithmOf(digest));
      for await (const c of this.storedBytes()) h.update(c);
      actual = `${algorithmOf(digest)}:${h.digest('hex')}` as Digest;
    }
    if (actual !== digest) {
      await this.discard();
      throw new RegistryError(ErrorCode.DIGEST_INVALID, undefined, { detail: { expected: digest, actual } });
    }
    this.verified = digest;
  }

  private async mismatch(code: ErrorCode, expected: number): Promise<never> {
    const actual = this.size;
    await this.discard();
    throw new RegistryError(code, `blob size ${actual} does not match the expected ${expected}`, { detail: { expected, actual } });
  }

  private async discard(): Promise<void> {
    this.state = 'cancelled';
    await this.dropMultipart();
    await this.removeSession();
    await this.closeLocal(true);
  }

  cancel(): Promise<void> {
    return this.exclusive(async () => {
      if (this.state === 'cancelled') return;
      const wasCommitted = this.state === 'committed';
      this.state = 'cancelled';
      if (!wasCommitted) {
        await this.settleParts().catch(() => undefined);
        await this.dropMultipart();
        await this.removeSession();
      }
      await this.closeLocal(true);
    });
  }

  /** Stores this request's bytes as a segment of the session and closes the local file: any replica may resume. */
  release(): Promise<void> {
    return this.exclusive(async () => {
      if (this.state === 'committed') {
        this.state = 'cancelled';
        await this.closeLocal(true);
        return;
      }
      if (this.state !== 'open') return;
      await this.settleParts().catch(() => undefined);
      await this.dropMultipart();
      await this.persist();
      if (this.segments.length === 0) await this.host.bucket.put(this.host.markerKey(this.id), Buffer.alloc(0));
      this.state = 'released';
      await this.closeLocal(true);
    });
  }

  /** The session's objects in the bucket (segments and marker), if it ever had any. */
  private async removeSession(): Promise<void> {
    if (this.segments.length === 0 && !this.stored) return;
    const keys: string[] = [];
    for await (const o of this.host.bucket.list(this.host.sessionPrefix(this.id))) keys.push(o.key);
    if (keys.length > 0) await this.host.bucket.deleteMany(keys);
  }

  /** true when the session may have objects in the bucket (it was resumed, or released before). */
  stored = false;

  private async closeLocal(remove: boolean): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.close().catch(() => undefined);
    if (remove) await unlink(this.localPath).catch(() => undefined);
    this.host.finished(this.localPath);
  }
}
