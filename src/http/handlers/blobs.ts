import { parseDigest, hexOf, ErrorCode, RegistryError, type Digest } from '../../oci/index.js';
import { resolveRanges, type ResolvedRange } from '../../oci/ranges.js';
import type { Context } from 'koa';
import type { BlobBody, RangeRequest } from '../../core/types.js';
import type { Metrics } from '../../observability/types.js';
import { byteranges, slice } from '../byteranges.js';
import { rangeHeaders, repoOf } from '../request.js';
import { streamBody } from '../respond.js';
import { emitEvents } from '../events.js';
import type { Handler } from './context.js';

function digestOf(ref: string | undefined) {
  if (ref === undefined) throw new RegistryError(ErrorCode.DIGEST_INVALID, 'missing digest');
  return parseDigest(ref);
}

/** end-2: GET/HEAD /v2/<name>/blobs/<digest> (Range supported) */
export const getBlob: Handler = async (ctx, { registry, metrics, events }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const digest = digestOf(ref);
  ctx.set('Docker-Content-Digest', digest);
  ctx.set('Accept-Ranges', 'bytes');
  if (ctx.method === 'HEAD') {
    const st = await registry.blobs.stat(repo, digest);
    ctx.state.cache = st.outcome;
    await emitEvents(ctx, events, registry, 'pull', repo, [{ kind: 'blob', digest, size: st.size }]);
    ctx.status = 200;
    ctx.type = 'application/octet-stream';
    ctx.set('Content-Length', String(st.size));
    ctx.set('ETag', `"${digest}"`);
    return;
  }
  const abort = new AbortController();
  // Only a client gone before its response finished cancels anything; aborting after a complete response
  // would build a DOMException (stack trace included) per blob GET for no one.
  ctx.req.once('close', () => {
    if (!ctx.res.writableFinished) abort.abort();
  });
  const ranges = rangeHeaders(ctx);
  if (ranges && ranges.length > 1) return multiRange(ctx, metrics, digest, await registry.blobs.open(repo, digest, undefined, abort.signal), ranges);
  const body = await registry.blobs.open(repo, digest, ranges?.[0], abort.signal);
  ctx.state.cache = body.outcome;
  await emitEvents(ctx, events, registry, 'pull', repo, [{ kind: 'blob', digest, size: body.size }]);
  if (body.redirect) return redirectTo(ctx, body.redirect, body);
  ctx.type = 'application/octet-stream';
  ctx.set('ETag', `"${digest}"`);
  if (body.range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${body.range.start}-${body.range.end}/${body.size}`);
  } else {
    ctx.status = 200;
  }
  const length = body.range ? body.range.end - body.range.start + 1 : body.size;
  streamBody(ctx, body.stream, (n) => metrics.bytesServed(body.outcome, n));
  ctx.length = length;
};

/**
 * `Range: bytes=0-1,3-4`: 206 multipart/byteranges, as Distribution (Go's http.ServeContent) answers; ranges
 * that overlap, go backwards or cost more than the blob get the whole blob (200); one satisfiable range is a
 * plain 206; none is 416. Cut from one pass over the whole blob, opened (and counted) once.
 */
function multiRange(ctx: Context, metrics: Metrics, digest: Digest, body: BlobBody, requested: RangeRequest[]): void {
  // The bucket answers the Range itself (S3 serves one range or the whole object; either is RFC 9110's).
  if (body.redirect) return redirectTo(ctx, body.redirect, body);
  let ranges: ResolvedRange[] | undefined;
  try {
    ranges = resolveRanges(requested, body.size);
  } catch (e) {
    body.stream.destroy();
    throw e;
  }
  ctx.state.cache = body.outcome;
  ctx.set('ETag', `"${digest}"`);
  const count = (n: number) => metrics.bytesServed(body.outcome, n);
  if (ranges === undefined) {
    ctx.status = 200;
    ctx.type = 'application/octet-stream';
    streamBody(ctx, body.stream, count);
    ctx.length = body.size;
    return;
  }
  ctx.status = 206;
  if (ranges.length === 1) {
    const r = ranges[0]!;
    ctx.type = 'application/octet-stream';
    ctx.set('Content-Range', `bytes ${r.start}-${r.end}/${body.size}`);
    streamBody(ctx, slice(body.stream, r), count);
    ctx.length = r.end - r.start + 1;
    return;
  }
  const multipart = byteranges(body.stream, ranges, body.size, hexOf(digest), 'application/octet-stream');
  ctx.type = multipart.contentType;
  streamBody(ctx, multipart.stream, count);
  ctx.length = multipart.length;
}

/** end-10: DELETE /v2/<name>/blobs/<digest> */
export const deleteBlob: Handler = async (ctx, { registry, events }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const digest = digestOf(ref);
  await registry.blobs.delete(repo, digest);
  await emitEvents(ctx, events, registry, 'delete', repo, [{ kind: 'blob', digest }]);
  ctx.status = 202;
};

/** Object storage with `redirect: true`: a temporary 307 to a presigned URL (it expires; the next GET may be served here again). */
function redirectTo(ctx: Context, url: string, body: BlobBody): void {
  body.stream.destroy();
  ctx.redirect(url);
  ctx.status = 307;
}
