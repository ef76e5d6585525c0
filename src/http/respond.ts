import { Readable, Transform, type Writable } from 'node:stream';
import type { Context } from 'koa';
import type { Descriptor } from '../oci/index.js';

export function apiVersion(ctx: Context): void {
  ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
}

export function contentHeaders(ctx: Context, d: Pick<Descriptor, 'digest' | 'size' | 'mediaType'>): void {
  ctx.set('Docker-Content-Digest', d.digest);
  ctx.set('Content-Type', d.mediaType);
  ctx.set('Content-Length', String(d.size));
  ctx.set('ETag', `"${d.digest}"`);
}

/** JSON body with an exact Content-Length. */
export function json(ctx: Context, value: unknown, contentType = 'application/json'): void {
  const body = Buffer.from(JSON.stringify(value));
  ctx.type = contentType;
  ctx.body = body;
}

/** A body that can fill a buffer the caller owns (the blob store's file reads). */
interface FillableSource {
  readInto(buf: Buffer): Promise<number>;
  destroy(err?: Error): void;
}

function isFillable(s: Readable): s is Readable & FillableSource {
  return typeof (s as Partial<FillableSource>).readInto === 'function';
}

const PUMP_CHUNK = 1 << 20;
const POOL_MAX = 16;
/** Idle 1 MiB buffers, shared by responses: a response takes two and gives them back when it ends. */
const pool: Buffer[] = [];

/**
 * What Koa pipes into the response for a file body: two buffers, alternately filled from the file and
 * written to the socket, each reused once its write has called back (the socket no longer needs it).
 * Reading the next chunk overlaps writing the last; no per-chunk allocation or stream hop.
 */
class FilePump extends Readable {
  constructor(
    private readonly src: FillableSource,
    private readonly onBytes?: (n: number) => void,
  ) {
    super();
  }

  // Koa hands the body to stream.pipeline, which calls pipe(res, { end: false }) and ends res on our 'end'.
  override pipe<T extends NodeJS.WritableStream>(dest: T, opts?: { end?: boolean }): T {
    void this.run(dest as unknown as Writable, opts?.end !== false);
    return dest;
  }

  override _read(): void {
    // Never read as a stream: Koa only pipes it.
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.src.destroy();
    cb(err);
  }

  private async run(dest: Writable, end: boolean): Promise<void> {
    const bufs = [pool.pop() ?? Buffer.allocUnsafeSlow(PUMP_CHUNK), pool.pop() ?? Buffer.allocUnsafeSlow(PUMP_CHUNK)];
    let writing: Promise<void> = Promise.resolve();
    let sent = 0;
    try {
      for (let i = 0; ; i++) {
        const buf = bufs[i & 1]!;
        // buf's last write (two rounds ago) has called back: `writing` was awaited since.
        const n = await this.src.readInto(buf);
        await writing;
        if (n === 0) {
          // A source that ends before the announced length must not leave the client waiting on a kept-alive
          // connection for bytes that will never come: cut it, so it sees the short body at once.
          const announced = declaredLength(dest);
          if (announced !== undefined && sent < announced) throw new Error(`body ended after ${sent} of ${announced} bytes`);
          break;
        }
        sent += n;
        if (dest.destroyed) throw new Error('response closed');
        this.onBytes?.(n);
        writing = new Promise<void>((resolve, reject) => {
          dest.write(n === buf.length ? buf : buf.subarray(0, n), (err) => (err ? reject(err) : resolve()));
        });
        writing.catch(() => undefined); // a client hang-up while the next read runs is seen at the next await
      }
      this.push(null);
      this.resume(); // 'end', which ends the response
      if (end) dest.end();
    } catch (err) {
      // After the headers went out: cut the connection so the client sees a short body.
      this.destroy(err as Error);
      dest.destroy(err as Error);
    } finally {
      this.src.destroy();
      // Reusable only once no write can still be reading them.
      await writing.catch(() => undefined);
      for (const b of bufs) if (pool.length < POOL_MAX) pool.push(b);
    }
  }
}

/** The response's Content-Length, when it has one. */
function declaredLength(dest: Writable): number | undefined {
  const res = dest as Writable & { getHeader?: (name: string) => unknown };
  const v = Number(res.getHeader?.('content-length'));
  return Number.isSafeInteger(v) ? v : undefined;
}

/**
 * Streams a body. If the source fails after the headers went out, the connection is cut so the
 * client sees a short body (and its digest check fails) rather than a clean end.
 */
export function streamBody(ctx: Context, stream: Readable, onBytes?: (n: number) => void): void {
  if (isFillable(stream)) {
    ctx.body = new FilePump(stream, onBytes);
    return;
  }
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes?.(chunk.length);
      cb(null, chunk);
    },
  });
  stream.once('error', (err) => {
    counter.destroy(err);
    ctx.res.destroy(err);
  });
  ctx.res.once('close', () => {
    if (!stream.destroyed) stream.destroy();
  });
  ctx.body = stream.pipe(counter);
}
