import type { Context } from 'koa';
import { ErrorCode, RegistryError, parseName, uploadRange, type Descriptor } from '../../oci/index.js';
import type { UploadStatus } from '../../core/types.js';
import { contentLength, contentRange, digestParam, hasBody, query, repoOf } from '../request.js';
import { emitEvents } from '../events.js';
import type { Handler, RequestState } from './context.js';

function uploadId(ref: string | undefined): string {
  if (!ref) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, 'missing upload id');
  return ref;
}

function signalOf(ctx: Context): AbortSignal {
  const abort = new AbortController();
  ctx.req.once('close', () => {
    if (!ctx.req.complete) abort.abort();
  });
  return abort.signal;
}

function sessionHeaders(ctx: Context, name: string, s: UploadStatus): void {
  ctx.set('Location', `/v2/${name}/blobs/uploads/${s.id}`);
  ctx.set('Range', uploadRange(s.size));
  ctx.set('Docker-Upload-UUID', s.id);
}

function created(ctx: Context, name: string, d: Descriptor): void {
  ctx.status = 201;
  ctx.set('Location', `/v2/${name}/blobs/${d.digest}`);
  ctx.set('Docker-Content-Digest', d.digest);
}

/** end-4a/4b/11: POST /v2/<name>/blobs/uploads/ — session, monolithic (?digest=), or mount (?mount=&from=) */
export const startUpload: Handler = async (ctx, { registry, events }, name) => {
  const repo = repoOf(ctx, registry, name);
  const q = query(ctx);
  const mount = q.get('mount');
  if (mount !== null) {
    const digest = digestParam(mount, 'mount');
    const from = q.get('from');
    if (from) {
      const source = registry.namespaces.resolve(parseName(from), q.get('ns') ?? undefined);
      // Without pull on `from` the mount is refused as if the blob were not there: a plain session follows.
      const state = ctx.state as RequestState;
      const d = state.mayPull && !state.mayPull(source) ? undefined : await registry.uploads.mount(repo, source, digest);
      if (d) {
        await emitEvents(ctx, events, registry, 'mount', repo, [{ kind: 'blob', digest: d.digest, size: d.size, fromRepository: registry.namespaces.displayName(source.key) }]);
        return created(ctx, name, d);
      }
    }
  }
  const digest = q.get('digest');
  if (digest !== null) {
    const d = await registry.uploads.monolithic(repo, digestParam(digest), ctx.req, contentLength(ctx), signalOf(ctx));
    await emitEvents(ctx, events, registry, 'push', repo, [{ kind: 'blob', digest: d.digest, size: d.size }]);
    return created(ctx, name, d);
  }
  const s = await registry.uploads.start(repo);
  ctx.status = 202;
  sessionHeaders(ctx, name, s);
};

/** end-5: PATCH — streamed or chunked (Content-Range) */
export const patchUpload: Handler = async (ctx, { registry }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const s = await registry.uploads.append(repo, uploadId(ref), ctx.req, contentRange(ctx), contentLength(ctx), signalOf(ctx));
  ctx.status = 202;
  sessionHeaders(ctx, name, s);
};

/** end-6: PUT ?digest= — completes, with or without a final chunk */
export const putUpload: Handler = async (ctx, { registry, events }, name, ref) => {
  const repo = repoOf(ctx, registry, name);
  const digest = digestParam(query(ctx).get('digest'));
  const tail = hasBody(ctx) ? ctx.req : undefined;
  const d = await registry.uploads.complete(repo, uploadId(ref), digest, tail, tail ? contentLength(ctx) : undefined, signalOf(ctx));
  await emitEvents(ctx, events, registry, 'push', repo, [{ kind: 'blob', digest: d.digest, size: d.size }]);
  created(ctx, name, d);
};

/** end-13: GET upload status */
export const getUpload: Handler = async (ctx, { registry }, name, ref) => {
  const s = await registry.uploads.status(repoOf(ctx, registry, name), uploadId(ref));
  ctx.status = 204;
  sessionHeaders(ctx, name, s);
};

/** DELETE upload: cancel */
export const deleteUpload: Handler = async (ctx, { registry }, name, ref) => {
  await registry.uploads.cancel(repoOf(ctx, registry, name), uploadId(ref));
  ctx.status = 204;
};
