import { Readable } from 'node:stream';
import { ErrorCode, RegistryError, type Descriptor, type Digest } from '../oci/index.js';
import type { BlobStore, BlobWriter, ByteRange } from '../store/types.js';
import type { Upstream } from '../upstream/types.js';
import { single } from './streams.js';

const READ_CHUNK = 256 * 1024;

export interface BlobFetchOptions {
  store: BlobStore;
  upstream: Upstream;
  repoPath: string;
  digest: Digest;
  /** the whole fetch (and so the cache write) gives up after this long */
  timeoutMs: number;
  /** extra upstream requests with Range after a body breaks */
  resumeAttempts: number;
  onBytes?: (n: number) => void;
}

/**
 * One upstream download of one blob, shared by every client that asks for it meanwhile.
 *
 * Bytes go to a temp file and are read back from it by each client at its own pace, so a slow client
 * never holds the others back and memory stays flat. The last byte is held back until the digest is
 * verified: a client of a corrupted upstream body is cut off before it has a complete wrong blob.
 * Clients hanging up never cancel the download: it has its own timeout.
 */
export class BlobFetch {
  /** bytes written to the temp file */
  written = 0;
  /** full size, once the upstream has said */
  size?: number;
  private writer?: BlobWriter;
  private state: 'running' | 'committed' | 'failed' = 'running';
  private error?: Error;
  private readers = 0;
  private closed = false;
  private released = false;
  private wake: Array<() => void> = [];
  private readonly abort = new AbortController();
  /** resolves when the blob is committed (or rejects when the fetch failed) */
  readonly done: Promise<Descriptor>;
  /** resolves once the upstream answered (size known) or the fetch failed */
  readonly started: Promise<void>;
  private markStarted!: () => void;

  constructor(private readonly opts: BlobFetchOptions) {
    this.started = new Promise((resolve) => (this.markStarted = resolve));
    this.done = this.run();
    this.done.catch(() => {}); // observed through readers and callers
  }

  private async run(): Promise<Descriptor> {
    const { store, upstream, repoPath, digest } = this.opts;
    const timer = setTimeout(() => this.abort.abort(new RegistryError(ErrorCode.UNAVAILABLE, 'upstream fetch timed out')), this.opts.timeoutMs);
    timer.unref?.();
    try {
      this.writer = await store.create();
      let attempts = 0;
      for (;;) {
        try {
          const res = await upstream.blob(repoPath, digest, this.abort.signal, this.written);
          if (this.size === undefined && res.size !== undefined) this.size = res.size;
          this.markStarted();
          // A server that ignored our Range sends the whole blob again: skip what we already have.
          let skip = this.written - res.offset;
          for await (const raw of res.body as AsyncIterable<Buffer>) {
            let chunk = raw;
            if (skip > 0) {
              if (chunk.length <= skip) {
                skip -= chunk.length;
                continue;
              }
              chunk = chunk.subarray(skip);
              skip = 0;
            }
            await this.writer.write(single(chunk), this.abort.signal);
            this.written += chunk.length;
            this.opts.onBytes?.(chunk.length);
            this.notify();
          }
          if (this.size !== undefined && this.written < this.size) throw new Error('upstream body ended early');
          break;
        } catch (e) {
          if (this.abort.signal.aborted || e instanceof RegistryError || attempts >= this.opts.resumeAttempts) throw e;
          if (this.written === 0 && this.size === undefined) throw e;
          attempts++;
        }
      }
      const desc = await this.writer.commit(digest, this.size);
      this.state = 'committed';
      return desc;
    } catch (e) {
      this.state = 'failed';
      this.error = e instanceof Error ? e : new Error(String(e));
      await this.writer?.cancel().catch(() => {});
      throw this.error;
    } finally {
      clearTimeout(timer);
      this.markStarted();
      this.notify();
      void this.maybeRelease();
    }
  }

  get failed(): Error | undefined {
    return this.state === 'failed' ? this.error : undefined;
  }

  /** A client's view of the blob (or a range of it), delivered as the download progresses. */
  reader(range?: ByteRange): Readable {
    const self = this;
    async function* follow(): AsyncGenerator<Buffer> {
      self.readers++;
      let pos = range?.start ?? 0;
      try {
        for (;;) {
          const end = range ? range.end + 1 : self.size;
          if (end !== undefined && pos >= end && (range || self.state === 'committed')) return;
          if (self.state === 'failed') throw self.error;
          if (self.released) {
            // The temp file handle is gone, which happens only after commit: the rest is in the store.
            if (end !== undefined && pos >= end) return;
            const rest = await self.opts.store.read(self.opts.digest, { start: pos, end: (end ?? self.written) - 1 });
            if (!rest) throw new RegistryError(ErrorCode.BLOB_UNKNOWN, 'blob vanished after commit');
            yield* rest as AsyncIterable<Buffer>;
            return;
          }
          // Hold back the final byte until the digest has been verified.
          const available = self.state === 'committed' ? self.written : Math.max(0, self.written - 1);
          const limit = end === undefined ? available : Math.min(available, end);
          if (pos < limit) {
            const len = Math.min(limit - pos, READ_CHUNK);
            const buf = await self.writer!.readAt(pos, len);
            pos += buf.length;
            yield buf;
            continue;
          }
          if (self.state === 'committed') return;
          await new Promise<void>((resolve) => self.wake.push(resolve));
        }
      } finally {
        self.readers--;
        void self.maybeRelease();
      }
    }
    return Readable.from(follow(), { objectMode: false });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  /** No new readers will join (the fetch left the in-flight table): the file handle may go once the last reader ends. */
  close(): void {
    this.closed = true;
    void this.maybeRelease();
  }

  private async maybeRelease(): Promise<void> {
    if (this.closed && this.readers === 0 && this.state !== 'running' && !this.released) {
      this.released = true;
      await this.writer?.release().catch(() => {});
    }
  }
}
