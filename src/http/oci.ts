import type { Context, Next } from 'koa';
import { ErrorCode, RegistryError } from '../oci/index.js';
import { getBlob, deleteBlob } from './handlers/blobs.js';
import type { Handler, HandlerDeps } from './handlers/context.js';
import { base, catalog, listTags, referrers } from './handlers/listing.js';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.js';
import { deleteUpload, getUpload, patchUpload, putUpload, startUpload } from './handlers/uploads.js';
import { apiVersion } from './respond.js';
import { matchRoute, type RouteMatch, type RouteName } from './routes.js';
import { rawPath } from './request.js';

/** One line per spec endpoint: route × method → handler. */
const ENDPOINTS: Record<RouteName, Partial<Record<string, Handler>>> = {
  base: { GET: base, HEAD: base },
  catalog: { GET: catalog },
  manifest: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
  blob: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob },
  upload: { POST: startUpload, PATCH: patchUpload, PUT: putUpload, GET: getUpload, DELETE: deleteUpload },
  tags: { GET: listTags },
  referrers: { GET: referrers },
};

/** Dispatches /v2 requests on the raw path (see routes.ts for why not the decoded one). */
export function ociRouter(deps: HandlerDeps & { authorize?: (ctx: Context, m: RouteMatch) => Promise<void> }) {
  return async function dispatch(ctx: Context, next: Next): Promise<void> {
    const path = rawPath(ctx);
    if (path !== '/v2' && !path.startsWith('/v2/')) return next();
    apiVersion(ctx);
    const m = matchRoute(path);
    if (!m) throw new RegistryError(ErrorCode.UNSUPPORTED, 'unknown endpoint', { status: 404, detail: { path } });
    ctx.state.route = m.route;
    if (m.route === 'manifest' || m.route === 'blob') ctx.state.ref = m.ref;
    const handler = ENDPOINTS[m.route][ctx.method];
    if (!handler) {
      ctx.set('Allow', Object.keys(ENDPOINTS[m.route]).join(', '));
      throw new RegistryError(ErrorCode.UNSUPPORTED, `method ${ctx.method} not allowed here`, { status: 405 });
    }
    if (m.route === 'upload' && ctx.method !== 'POST' && !m.ref) throw new RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, 'missing upload id');
    // Before the handler: a refused request reads no body and leaves nothing behind.
    await deps.authorize?.(ctx, m);
    await handler(ctx, deps, m.name ?? '', m.ref);
  };
}
