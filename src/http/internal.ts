import type { Context, Next } from 'koa';
import { timingSafeEqual } from 'node:crypto';
import type { BlobBody, RangeRequest } from '../core/types.js';
import { ErrorCode, RegistryError, parseDigest, type Digest } from '../oci/index.js';
import { rawPathAfter } from './endpoints.js';
import { rangeHeader } from './request.js';
import { streamBody } from './respond.js';

export interface InternalDeps {
  /** the blob this replica is downloading right now, from a byte range; undefined when not in flight */
  inflightBody(digest: Digest, range: RangeRequest | undefined): BlobBody | undefined;
  /** the secret peers share; requests without it get 404, as if the endpoint did not exist */
  token(): string | undefined;
  onBytes?: (n: number) => void;
}

const PREFIX = '/_wharf/inflight/blobs/';
const TOKEN_HEADER = 'x-wharf-peer-token';

/**
 * `GET /_wharf/inflight/blobs/<digest>` (Range honoured): peers stream a blob this replica is fetching.
 * Not part of the registry API: a digest alone must open nothing to clients, hence the shared token.
 */
export function internalEndpoint(deps: InternalDeps) {
  return async function inflight(ctx: Context, next: Next): Promise<void> {
    const ref = rawPathAfter(ctx, PREFIX);
    if (ref === undefined) return next();
    ctx.state.route = 'peer_inflight_blob';
    const expected = deps.token();
    if (expected === undefined || !same(ctx.get(TOKEN_HEADER), expected)) throw new RegistryError(ErrorCode.UNSUPPORTED, 'unknown endpoint', { status: 404 });
    if (ctx.method !== 'GET') throw new RegistryError(ErrorCode.UNSUPPORTED, `method ${ctx.method} not allowed here`, { status: 405 });
    const digest = parseDigest(ref); // raw, as peers send it (upstream/peer.ts): no decoded spelling
    const body = deps.inflightBody(digest, rangeHeader(ctx));
    if (!body) throw new RegistryError(ErrorCode.BLOB_UNKNOWN, 'not in flight here', { detail: { digest } });
    ctx.type = 'application/octet-stream';
    ctx.set('Docker-Content-Digest', digest);
    if (body.range) {
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${body.range.start}-${body.range.end}/${body.size}`);
    } else {
      ctx.status = 200;
    }
    streamBody(ctx, body.stream, deps.onBytes);
    ctx.length = body.range ? body.range.end - body.range.start + 1 : body.size;
  };
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
