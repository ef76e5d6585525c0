import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { algorithmOf, Digester, ErrorCode, hexOf, parseDigest, RegistryError, type Digest } from '../../oci/index.js';
import type { BlobStat, BlobStore, BlobWriter, ByteRange, CreateOptions } from '../types.js';
import { isWriterId } from './fs-blob-store.js';
import { S3Bucket } from './s3-bucket.js';
import { S3BlobWriter, type S3WriterHost, type Segment } from './s3-blob-writer.js';
import { claimSoleUse, type SoleUse } from './s3-owner.js';
import { createS3Client, noStorageObserver, type S3Options, type StorageObserver } from './s3-client.js';

export interface S3BlobStoreOptions {
  s3: S3Options;
  /** this process's own directory: local temp files of running writes (never shared with other replicas) */
  localDir: string;
  observer?: StorageObserver;
  client?: S3Client;
  randomId?: () => string;
  now?: () => number;
}

/** S3 requires every part but the last to be at least this long. */
export const MIN_PART_SIZE = 5 << 20;
const SEGMENT_RE = /\/(\d{16})$/;
const MARKER = 'session';

/**
 * Content-addressed blobs in an S3 bucket: `<prefix>blobs/<alg>/<hex[0:2]>/<hex>`. Upload sessions are
 * `<prefix>uploads/<id>/<offset>` segments (one per request that added bytes) so any replica can resume them;
 * a quarantined blob moves to `<prefix>quarantine/<alg>-<hex>`.
 */
export class S3BlobStore implements BlobStore {
  readonly bucket: S3Bucket;
  readonly options: S3Options;
  private readonly localDir: string;
  private readonly randomId: () => string;
  private readonly now: () => number;
  private readonly openLocal = new Set<string>();
  private readonly host: S3WriterHost;
  /** Shown in the start-up log, like the filesystem store's. */
  readonly directWrites = { enabled: false, reason: 'object storage' };

  constructor(opts: S3BlobStoreOptions) {
    if (opts.s3.partSize < MIN_PART_SIZE) throw new Error(`storage.s3.partSize must be at least 5MiB (S3's smallest part)`);
    this.options = opts.s3;
    this.localDir = opts.localDir;
    this.randomId = opts.randomId ?? (() => randomBytes(16).toString('hex'));
    this.now = opts.now ?? Date.now;
    this.bucket = new S3Bucket(opts.client ?? createS3Client(opts.s3), opts.s3.bucket, opts.observer ?? noStorageObserver, this.now);
    const prefix = opts.s3.prefix;
    this.host = {
      bucket: this.bucket,
      partSize: opts.s3.partSize,
      blobKey: (d) => this.blobKey(d),
      sessionPrefix: (id) => `${prefix}uploads/${id}/`,
      segmentKey: (id, offset) => `${prefix}uploads/${id}/${String(offset).padStart(16, '0')}`,
      markerKey: (id) => `${prefix}uploads/${id}/${MARKER}`,
      finished: (path) => {
        this.openLocal.delete(path);
      },
    };
  }

  /** Creates the local temp directory and checks the bucket answers (a listing of one key). */
  static async open(opts: S3BlobStoreOptions): Promise<S3BlobStore> {
    const store = new S3BlobStore(opts);
    await mkdir(store.localDir, { recursive: true });
    try {
      for await (const _ of store.bucket.list(`${opts.s3.prefix}blobs/`)) break;
    } catch (e) {
      throw new Error(`object storage: bucket ${opts.s3.bucket} at ${opts.s3.endpoint ?? `AWS ${opts.s3.region}`} is not usable (${(e as Error).message})`, { cause: e });
    }
    return store;
  }

  blobKey(digest: Digest): string {
    const d = parseDigest(digest);
    const hex = hexOf(d);
    return `${this.options.prefix}blobs/${algorithmOf(d)}/${hex.slice(0, 2)}/${hex}`;
  }

  /**
   * Claims the bucket and prefix for this wharf alone (one process without Redis); `id` stays the same across
   * restarts of one replica. Rejects when another live wharf holds the claim.
   */
  claimSoleUse(id: string, onRenewError?: (e: Error) => void): Promise<SoleUse> {
    return claimSoleUse(this.bucket, `${this.options.prefix}wharf-owner`, id, { now: this.now, ...(onRenewError ? { onRenewError } : {}) });
  }

  async stat(digest: Digest): Promise<BlobStat | undefined> {
    const o = await this.bucket.head(this.blobKey(digest));
    return o ? { digest, size: o.size } : undefined;
  }

  async statTime(digest: Digest): Promise<number | undefined> {
    return (await this.bucket.head(this.blobKey(digest)))?.lastModified;
  }

  async read(digest: Digest, range?: ByteRange): Promise<Readable | undefined> {
    return (await this.open(digest, range))?.body;
  }

  async readSized(digest: Digest, size: number, range?: ByteRange): Promise<Readable | undefined> {
    const r = await this.open(digest, range);
    if (r && r.total !== size) {
      r.body.destroy();
      return undefined;
    }
    return r?.body;
  }

  /** One GetObject: the bytes and the object's total size; undefined when absent. */
  private async open(digest: Digest, range?: ByteRange): Promise<{ body: Readable; total: number } | undefined> {
    if (range && (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end < range.start)) {
      throw new RegistryError(ErrorCode.RANGE_INVALID, undefined, { detail: { range } });
    }
    let r;
    try {
      r = await this.bucket.get(this.blobKey(digest), range);
    } catch (e) {
      // 416: the range starts past the end.
      if ((e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 416) throw new RegistryError(ErrorCode.RANGE_INVALID, undefined, { detail: { range } });
      throw e;
    }
    if (!r) return undefined;
    if (range && range.end >= r.total) {
      r.body.destroy();
      throw new RegistryError(ErrorCode.RANGE_INVALID, undefined, { detail: { range, size: r.total } });
    }
    return r;
  }

  /** A presigned GET for a committed blob, valid for `expiresMs` (clients fetch the bytes from the bucket). */
  presign(digest: Digest, expiresMs: number): Promise<string> {
    return getSignedUrl(this.bucket.client, new GetObjectCommand({ Bucket: this.options.bucket, Key: this.blobKey(digest) }), {
      expiresIn: Math.max(1, Math.floor(expiresMs / 1000)),
    });
  }

  async redirectUrl(digest: Digest): Promise<string | undefined> {
    return this.options.redirect ? this.presign(digest, this.options.redirectExpiry) : undefined;
  }

  private localPath(): string {
    return join(this.localDir, `${this.randomId()}-s3`);
  }

  async create(id?: string, opts: CreateOptions = {}): Promise<BlobWriter> {
    const wid = id ?? this.randomId();
    assertWriterId(wid);
    const path = this.localPath();
    const fh = await open(path, 'wx+');
    this.openLocal.add(path);
    return new S3BlobWriter(wid, this.host, path, fh, [], new Digester('sha256'), opts.digest);
  }

  async resume(id: string): Promise<BlobWriter | undefined> {
    assertWriterId(id);
    const segments: Segment[] = [];
    let found = false;
    for await (const o of this.bucket.list(this.host.sessionPrefix(id))) {
      found = true;
      const m = SEGMENT_RE.exec(o.key);
      if (m) segments.push({ key: o.key, offset: Number(m[1]), size: o.size });
    }
    if (!found) return undefined;
    segments.sort((a, b) => a.offset - b.offset);
    // Only a contiguous run from 0 counts (a segment is one PUT, so each is whole).
    const run: Segment[] = [];
    for (const s of segments) {
      const end = run.length ? run[run.length - 1]!.offset + run[run.length - 1]!.size : 0;
      if (s.offset !== end) break;
      if (s.size > 0) run.push(s);
    }
    const path = this.localPath();
    const fh = await open(path, 'wx+');
    this.openLocal.add(path);
    const w = new S3BlobWriter(id, this.host, path, fh, run, undefined, undefined);
    w.stored = true;
    return w;
  }

  async delete(digest: Digest): Promise<boolean> {
    const key = this.blobKey(digest);
    if (!(await this.bucket.head(key))) return false;
    await this.bucket.deleteMany([key]);
    return true;
  }

  /** Removes many committed blobs in DeleteObjects batches. */
  async deleteMany(digests: readonly Digest[]): Promise<void> {
    await this.bucket.deleteMany(digests.map((d) => this.blobKey(d)));
  }

  async quarantine(digest: Digest): Promise<boolean> {
    const d = parseDigest(digest);
    const key = this.blobKey(d);
    const r = await this.bucket.get(key);
    if (!r) return false;
    const chunks: Buffer[] = [];
    for await (const c of r.body) chunks.push(c as Buffer);
    await this.bucket.put(`${this.options.prefix}quarantine/${algorithmOf(d)}-${hexOf(d)}`, Buffer.concat(chunks));
    await this.bucket.deleteMany([key]);
    return true;
  }

  async *list(): AsyncIterable<BlobStat> {
    const root = `${this.options.prefix}blobs/`;
    for await (const o of this.bucket.list(root)) {
      const m = /^(sha256|sha512)\/([a-f0-9]{2})\/([a-f0-9]+)$/.exec(o.key.slice(root.length));
      if (!m || !m[3]!.startsWith(m[2]!) || m[3]!.length !== (m[1] === 'sha256' ? 64 : 128)) continue;
      yield { digest: `${m[1]}:${m[3]}` as Digest, size: o.size };
    }
  }

  /**
   * What crashed or abandoned writes left: local temp files, multipart uploads never completed (found with
   * ListMultipartUploads and aborted), and upload-session objects no live session owns. Only things untouched
   * for `olderThanMs` go (a multipart upload's last touch is its newest part).
   */
  async sweepTemp(olderThanMs: number, isLive?: (id: string) => boolean | Promise<boolean>): Promise<{ removed: string[]; bytes: number }> {
    const cutoff = this.now() - olderThanMs;
    // Object-storage times have whole seconds and some implementations (Swift) round them up.
    const stored = cutoff + 1000;
    const removed: string[] = [];
    let bytes = 0;
    for (const name of await readdir(this.localDir).catch(() => [] as string[])) {
      const path = join(this.localDir, name);
      if (!name.endsWith('-s3') || this.openLocal.has(path)) continue;
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile() || st.mtimeMs > cutoff) continue;
      await unlink(path).catch(() => undefined);
      bytes += st.size;
    }
    for await (const u of this.bucket.listMultipart(`${this.options.prefix}blobs/`)) {
      if (u.initiated > stored) continue;
      // A long download started long ago but still sending parts is another replica's live write.
      const last = await this.bucket.lastActivity(u.key, u.uploadId, u.initiated);
      if (last === undefined || last > stored) continue;
      await this.bucket.abortMultipart(u.key, u.uploadId);
      removed.push(`multipart:${u.key.slice(this.options.prefix.length)}`);
    }
    const sessions = new Map<string, { keys: string[]; bytes: number; newest: number }>();
    const root = `${this.options.prefix}uploads/`;
    for await (const o of this.bucket.list(root)) {
      const id = o.key.slice(root.length).split('/')[0]!;
      const s = sessions.get(id) ?? { keys: [], bytes: 0, newest: 0 };
      s.keys.push(o.key);
      s.bytes += o.size;
      s.newest = Math.max(s.newest, o.lastModified);
      sessions.set(id, s);
    }
    for (const [id, s] of sessions) {
      if (s.newest > stored || (isLive && (await isLive(id)))) continue;
      await this.bucket.deleteMany(s.keys);
      removed.push(id);
      bytes += s.bytes;
    }
    return { removed, bytes };
  }
}

function assertWriterId(id: string): void {
  if (!isWriterId(id)) throw new RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, 'invalid upload id', { detail: { id } });
}
