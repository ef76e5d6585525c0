import { parseDigest, ErrorCode, RegistryError } from '../../oci/index.js';
import { rangeHeader, repoOf } from '../request.js';
import { streamBody } from '../respond.js';
import type { Handler } from './context.js';

function digestOf(ref: string | undefined) {
  if (ref === undefined) throw new RegistryError(ErrorCode.DIGEST_INVALID, 'missing digest');
  return parseDigest(ref);
}

/** end-2: GET/HEAD /v2/<name>/blobs/<digest> (Range supported) */
export const getBlob: Handler = async (ctx, { registry, metrics }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const digest = digestOf(ref);
  ctx.set('Docker-Content-Digest', digest);
  ctx.set('Accept-Ranges', 'bytes');
  if (ctx.method === 'HEAD') {
    const st = await registry.blobs.stat(repo, digest);
    ctx.state.cache = st.outcome;
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
  const body = await registry.blobs.open(repo, digest, rangeHeader(ctx), abort.signal);
  ctx.state.cache = body.outcome;
  if (body.redirect) {
    // Temporary: the URL expires, and the next GET may be answered from wharf again.
    body.stream.destroy();
    ctx.redirect(body.redirect);
    ctx.status = 307;
    return;
  }
  ctx.type = 'application/octet-stream';
  ctx.set('ETag', `"${digest}"`);
  if (body.range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${body.range.start}-${body.range.end}/${body.size}`);
  } else {
    ctx.status = 200;
  }
  const length = body.range ? body.range.end - body.range.start + 1 : body.size;
  streamBody(ctx, body.stream, (n) => metrics.bytesServed(body.source, n));
  ctx.length = length;
};

/** end-10: DELETE /v2/<name>/blobs/<digest> */
export const deleteBlob: Handler = async (ctx, { registry }, name, ref) => {
  await registry.blobs.delete(repoOf(ctx, registry, name), digestOf(ref));
  ctx.status = 202;
};
