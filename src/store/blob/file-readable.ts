import { Readable } from 'node:stream';

/** The slice of a file handle a FileReadable needs. */
export interface PositionalFile {
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

const CHUNK = 1 << 20;

/**
 * Bytes [start, end] of an open file. As a Readable it reads 1 MiB chunks (a fresh buffer each, as any
 * stream consumer may keep them); `readInto` lets a consumer that knows when it is done with a buffer
 * (a response writer waiting for its write callbacks) reuse its own buffers instead, which saves the
 * allocation and page faults of a new megabyte per chunk: most of the cost of serving a cached layer.
 * The file is closed when the bytes run out or the stream is destroyed.
 */
export class FileReadable extends Readable {
  private pos: number;
  /** last byte to read (inclusive), or the end of the file */
  private readonly end: number;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly file: PositionalFile,
    start: number,
    /** inclusive; omitted: to the end of the file */
    end?: number,
  ) {
    super({ highWaterMark: CHUNK });
    this.pos = start;
    this.end = end ?? Number.MAX_SAFE_INTEGER;
    this.toEof = end === undefined;
  }

  private readonly toEof: boolean;

  /** Reads the next bytes into `buf`; 0 once the range is done (the file is then closed). */
  async readInto(buf: Buffer): Promise<number> {
    const want = Math.min(buf.length, this.end + 1 - this.pos);
    if (want <= 0 || this.destroyed) {
      await this.close();
      return 0;
    }
    const { bytesRead } = await this.file.read(buf, 0, want, this.pos);
    if (bytesRead === 0) {
      if (!this.toEof) throw new Error(`file ended at ${this.pos}, before the expected ${this.end + 1}`);
      await this.close();
      return 0;
    }
    this.pos += bytesRead;
    return bytesRead;
  }

  override _read(): void {
    const want = Math.min(CHUNK, this.end + 1 - this.pos);
    if (want <= 0) {
      void this.close().then(
        () => this.push(null),
        (e: unknown) => this.destroy(e as Error),
      );
      return;
    }
    const buf = Buffer.allocUnsafeSlow(want);
    this.readInto(buf).then(
      (n) => this.push(n === 0 ? null : n === buf.length ? buf : buf.subarray(0, n)),
      (e: unknown) => this.destroy(e as Error),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.close().then(
      () => cb(err),
      () => cb(err),
    );
  }

  private close(): Promise<void> {
    this.closing ??= this.file.close();
    return this.closing;
  }
}
