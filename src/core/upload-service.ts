import { ErrorCode, RegistryError, uploadRange, type Descriptor, type Digest } from '../oci/index.js';
import type { BlobWriter, UploadRecord } from '../store/types.js';
import type { CoreDeps } from './deps.js';
import type { RepoAccess } from './repo-access.js';
import { capped } from './streams.js';
import type { RepoRef, UploadService, UploadStatus } from './types.js';

/**
 * Blob uploads (push). Bytes stream to a temp file; the session (in metadata) remembers the temp file
 * and its size, so an upload survives a restart and may continue on another replica.
 */
export class Uploads implements UploadService {
  /** serialises requests on one session in this process */
  private readonly busy = new Set<string>();

  constructor(
    private readonly d: CoreDeps,
    private readonly access: RepoAccess,
  ) {}

  async start(repo: RepoRef): Promise<UploadStatus> {
    await this.access.assertPushable(repo);
    const w = await this.d.store.create();
    await w.release();
    const now = this.d.now();
    await this.d.meta.createUpload({ id: w.id, repo: repo.key, writerId: w.id, size: 0, startedAt: now, updatedAt: now });
    return { id: w.id, size: 0 };
  }

  async monolithic(repo: RepoRef, digest: Digest, body: AsyncIterable<Uint8Array>, length?: number, signal?: AbortSignal): Promise<Descriptor> {
    await this.access.assertPushable(repo);
    this.checkLength(length, 0);
    const w = await this.d.store.create(undefined, { digest });
    try {
      await w.write(this.limit(body, 0), signal);
      if (length !== undefined && w.size !== length) throw sizeInvalid(length, w.size);
      const desc = await w.commit(digest, w.size);
      await this.access.link(repo, digest, { kind: 'blob', size: desc.size, origin: 'local' });
      return { ...desc, digest };
    } finally {
      await w.cancel().catch(() => {});
    }
  }

  async mount(repo: RepoRef, from: RepoRef, digest: Digest): Promise<Descriptor | undefined> {
    await this.access.assertPushable(repo);
    const link = await this.d.meta.getLink(from.key, digest);
    if (!link || link.kind !== 'blob') return undefined;
    const st = await this.d.store.stat(digest);
    if (!st) return undefined;
    await this.access.link(repo, digest, { kind: 'blob', size: st.size, origin: 'local' });
    return { mediaType: 'application/octet-stream', digest, size: st.size };
  }

  async append(
    repo: RepoRef,
    id: string,
    body: AsyncIterable<Uint8Array>,
    range: { start: number; end?: number } | undefined,
    length: number | undefined,
    signal?: AbortSignal,
  ): Promise<UploadStatus> {
    return this.exclusive(id, async (lease) => {
      const rec = await this.session(repo, id);
      if (range && range.start !== rec.size) {
        throw new RegistryError(ErrorCode.RANGE_INVALID, 'chunk does not start where the upload ends', {
          headers: { Range: uploadRange(rec.size), 'Docker-Upload-UUID': id },
          detail: { expectedStart: rec.size, got: range.start },
        });
      }
      const declared = range?.end !== undefined ? range.end - range.start + 1 : length;
      this.checkLength(declared, rec.size);
      const w = await this.writer(rec);
      try {
        const before = w.size;
        try {
          await w.write(this.limit(body, before), lease.signal ? AbortSignal.any(signal ? [signal, lease.signal] : [lease.signal]) : signal);
        } catch (e) {
          // A lost lease: another replica may write the file now; this request stops touching it.
          lease.check();
          // Cut off, out of space, too large: nothing of this request was acknowledged, so none of it stays.
          await this.rollBack(rec, w, before);
          throw e;
        }
        const got = w.size - before;
        if (declared !== undefined && got !== declared) {
          // The session can no longer be trusted to hold what the client thinks it sent: drop it.
          await this.drop(rec, w);
          throw sizeInvalid(declared, got);
        }
        lease.check();
        if (!(await this.d.meta.advanceUpload(id, rec.size, w.size, this.d.now()))) {
          throw new RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, 'upload changed concurrently');
        }
        return { id, size: w.size };
      } finally {
        await w.release().catch(() => {});
      }
    });
  }

  async complete(repo: RepoRef, id: string, digest: Digest, tail: AsyncIterable<Uint8Array> | undefined, length: number | undefined, signal?: AbortSignal): Promise<Descriptor> {
    return this.exclusive(id, async (lease) => {
      const rec = await this.session(repo, id);
      this.checkLength(length, rec.size);
      const w = await this.writer(rec);
      try {
        if (tail) {
          const before = w.size;
          await w.write(this.limit(tail, before), signal);
          if (length !== undefined && w.size - before !== length) throw sizeInvalid(length, w.size - before);
        }
        lease.check();
        const desc = await w.commit(digest, w.size);
        await this.access.link(repo, digest, { kind: 'blob', size: desc.size, origin: 'local' });
        await this.d.meta.deleteUpload(id);
        return { ...desc, digest };
      } catch (e) {
        // DIGEST_INVALID and friends end the session: nothing of it may become visible or linger.
        await this.drop(rec, w);
        throw e;
      } finally {
        await w.release().catch(() => {});
      }
    });
  }

  async status(repo: RepoRef, id: string): Promise<UploadStatus> {
    const rec = await this.session(repo, id);
    return { id, size: rec.size };
  }

  async cancel(repo: RepoRef, id: string): Promise<void> {
    return this.exclusive(id, async () => {
      const rec = await this.session(repo, id);
      const w = await this.d.store.resume(rec.writerId).catch(() => undefined);
      await this.drop(rec, w);
    });
  }

  private async session(repo: RepoRef, id: string): Promise<UploadRecord> {
    const rec = await this.d.meta.getUpload(id);
    if (!rec || rec.repo !== repo.key) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, undefined, { detail: { uuid: id } });
    return rec;
  }

  private async writer(rec: UploadRecord): Promise<BlobWriter> {
    const w = await this.d.store.resume(rec.writerId);
    if (!w) {
      await this.d.meta.deleteUpload(rec.id);
      throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, 'upload data is gone', { detail: { uuid: rec.id } });
    }
    if (w.size < rec.size) {
      await this.drop(rec, w);
      throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, 'upload data is incomplete', { detail: { uuid: rec.id } });
    }
    // Bytes past the session's size belong to a request that never finished (a crash, a cut connection):
    // the session is what its client was told, so they go.
    if (w.size > rec.size) await this.rollBack(rec, w, rec.size);
    return w;
  }

  /** Cuts the file back to `size`; a file that cannot be cut ends the session (its status would lie). */
  private async rollBack(rec: UploadRecord, w: BlobWriter, size: number): Promise<void> {
    try {
      await w.truncate(size);
    } catch (e) {
      await this.drop(rec, w);
      throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, 'upload data could not be restored after a failed request', {
        detail: { uuid: rec.id, reason: (e as Error).message },
      });
    }
  }

  private async drop(rec: UploadRecord, w: BlobWriter | undefined): Promise<void> {
    await w?.cancel().catch(() => {});
    await this.d.meta.deleteUpload(rec.id);
  }

  private checkLength(declared: number | undefined, already: number): void {
    if (declared !== undefined && already + declared > this.d.policy.maxBlobBytes) throw tooLarge(this.d.policy.maxBlobBytes);
  }

  private limit(body: AsyncIterable<Uint8Array>, already: number): AsyncIterable<Uint8Array> {
    const max = this.d.policy.maxBlobBytes;
    return capped(body, max - already, () => tooLarge(max));
  }

  /**
   * One request at a time per session: in this process (busy), and across replicas sharing the volume (a
   * lease in the cluster store), so no other writer touches the file while this request writes or publishes.
   */
  private async exclusive<T>(id: string, work: (lease: { check(): void; signal?: AbortSignal }) => Promise<T>): Promise<T> {
    if (this.busy.has(id)) throw concurrent();
    this.busy.add(id);
    try {
      const held = this.d.cluster ? await this.d.cluster.holdUpload(id) : undefined;
      if (this.d.cluster && !held) throw concurrent();
      try {
        return await work({
          signal: held?.signal,
          check() {
            if (held?.lost) throw new RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, 'lost the upload lease; another replica may be writing this upload');
          },
        });
      } finally {
        await held?.release().catch(() => {});
      }
    } finally {
      this.busy.delete(id);
    }
  }
}

function concurrent(): RegistryError {
  return new RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, 'another request is writing this upload');
}

function sizeInvalid(expected: number, got: number): RegistryError {
  return new RegistryError(ErrorCode.SIZE_INVALID, 'body length does not match the declared length', { detail: { expected, got } });
}

function tooLarge(limit: number): RegistryError {
  return new RegistryError(ErrorCode.SIZE_INVALID, 'blob exceeds the configured size limit', { status: 413, detail: { limit } });
}
