import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isNotFound, mapStorageError, statusOf, type StorageObserver } from './s3-client.js';

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: number;
}

export interface MultipartInfo {
  key: string;
  uploadId: string;
  initiated: number;
}

/**
 * The S3 calls the blob store makes, each counted and timed (`op` label) and its failure mapped to what a
 * client should see. Keys are full keys (prefix included).
 */
export class S3Bucket {
  constructor(
    readonly client: S3Client,
    readonly bucket: string,
    private readonly observer: StorageObserver,
    private readonly now: () => number = Date.now,
  ) {}

  private async call<T>(op: string, fn: () => Promise<T>, notFound?: () => T): Promise<T> {
    const t0 = performance.now();
    try {
      const out = await fn();
      this.observer.storageRequest(op, '200', (performance.now() - t0) / 1000);
      return out;
    } catch (e) {
      this.observer.storageRequest(op, statusOf(e), (performance.now() - t0) / 1000);
      if (notFound && isNotFound(e)) return notFound();
      throw mapStorageError(e, op, (o, m) => this.observer.accessDenied(o, m));
    }
  }

  head(key: string): Promise<ObjectInfo | undefined> {
    return this.call(
      'head',
      async () => {
        const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
        return { key, size: r.ContentLength ?? 0, lastModified: r.LastModified?.getTime() ?? this.now() };
      },
      () => undefined,
    );
  }

  /** The object's bytes (a range: inclusive ends), with the object's total size; undefined when absent. */
  get(key: string, range?: { start: number; end: number }, signal?: AbortSignal): Promise<{ body: Readable; total: number } | undefined> {
    return this.call(
      'get',
      async () => {
        const r = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
          signal ? { abortSignal: signal } : {},
        );
        const total = r.ContentRange ? Number(r.ContentRange.split('/')[1]) : (r.ContentLength ?? 0);
        return { body: r.Body as Readable, total };
      },
      () => undefined,
    );
  }

  /** The whole object (or a range of it) in memory: upload segments, at most a part size long. */
  async getBytes(key: string, range?: { start: number; end: number }): Promise<Buffer | undefined> {
    const r = await this.get(key, range);
    if (!r) return undefined;
    const chunks: Buffer[] = [];
    for await (const c of r.body) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  put(key: string, body: Buffer): Promise<void> {
    return this.call('put', async () => {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length }));
    });
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.call('list', () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) })),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key) yield { key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Removes up to any number of keys, 1000 per DeleteObjects. With Content-MD5: some implementations
   * (Swift's s3api, older Ceph and MinIO) refuse a DeleteObjects without it, and current SDKs no longer send it.
   */
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const cmd = new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } });
      cmd.middlewareStack.add(
        (next) => async (args) => {
          const req = args.request as { body?: unknown; headers?: Record<string, string> };
          if (req.headers && (typeof req.body === 'string' || req.body instanceof Uint8Array)) {
            req.headers['content-md5'] = createHash('md5').update(req.body).digest('base64');
          }
          return next(args);
        },
        { step: 'build', name: 'wharfContentMd5' },
      );
      const out = await this.call('delete', () => this.client.send(cmd));
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) throw new Error(`object storage could not delete ${failed.length} object(s): ${failed[0]!.Code} ${failed[0]!.Message ?? ''}`);
    }
  }

  createMultipart(key: string): Promise<string> {
    return this.call('create_multipart', async () => {
      const r = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key, ContentType: 'application/octet-stream' }));
      if (!r.UploadId) throw new Error('object storage answered CreateMultipartUpload without an UploadId');
      return r.UploadId;
    });
  }

  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    return this.call('upload_part', async () => {
      const r = await this.client.send(
        new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
      );
      return r.ETag ?? '';
    });
  }

  completeMultipart(key: string, uploadId: string, parts: ReadonlyArray<{ PartNumber: number; ETag: string }>): Promise<void> {
    return this.call('complete_multipart', async () => {
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: [...parts] } }));
    });
  }

  abortMultipart(key: string, uploadId: string): Promise<void> {
    return this.call(
      'abort_multipart',
      async () => {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
      },
      () => undefined,
    );
  }

  /** When a multipart upload last got a part (its start when it has none): how long it has been idle. */
  lastActivity(key: string, uploadId: string, initiated: number): Promise<number | undefined> {
    return this.call(
      'list_parts',
      async () => {
        let last = initiated;
        let marker: string | undefined;
        for (;;) {
          const page = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }));
          for (const p of page.Parts ?? []) last = Math.max(last, p.LastModified?.getTime() ?? 0);
          if (!page.IsTruncated || !page.NextPartNumberMarker) return last;
          marker = page.NextPartNumberMarker;
        }
      },
      // Completed or aborted meanwhile.
      () => undefined,
    );
  }

  async *listMultipart(prefix: string): AsyncIterable<MultipartInfo> {
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const page = await this.call('list_multipart', () =>
        this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, ...(keyMarker ? { KeyMarker: keyMarker, UploadIdMarker: idMarker } : {}) }),
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (u.Key && u.UploadId) yield { key: u.Key, uploadId: u.UploadId, initiated: u.Initiated?.getTime() ?? 0 };
      }
      if (!page.IsTruncated || !page.NextKeyMarker) return;
      keyMarker = page.NextKeyMarker;
      idMarker = page.NextUploadIdMarker;
    }
  }
}
