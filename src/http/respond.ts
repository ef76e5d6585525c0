import { Transform, type Readable } from 'node:stream';
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

/**
 * Streams a body. If the source fails after the headers went out, the connection is cut so the
 * client sees a short body (and its digest check fails) rather than a clean end.
 */
export function streamBody(ctx: Context, stream: Readable, onBytes?: (n: number) => void): void {
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
