import type { Context } from 'koa';
import { MediaType, parseDigest, ErrorCode, RegistryError } from '../../oci/index.js';
import type { Page } from '../../core/types.js';
import { paging, query, repoOf } from '../request.js';
import { json } from '../respond.js';
import type { Handler, RequestState } from './context.js';

function linkNext(ctx: Context, path: string, n: number | undefined, p: Page<string>): void {
  if (p.next === undefined || n === undefined) return;
  const q = new URLSearchParams({ n: String(n), last: p.next });
  const ns = query(ctx).get('ns');
  if (ns) q.set('ns', ns);
  ctx.set('Link', `<${path}?${q.toString()}>; rel="next"`);
}

/** end-8a/8b: GET /v2/<name>/tags/list */
export const listTags: Handler = async (ctx, { registry }, name) => {
  const { n, last } = paging(ctx);
  const p = await registry.tags.list(repoOf(ctx, registry, name), n, last);
  linkNext(ctx, `/v2/${name}/tags/list`, n, p);
  json(ctx, { name, tags: p.items });
};

/** One page of the repositories the caller may see (names that no longer resolve are left out). */
function visiblePage(all: Page<string>, visible: (name: string) => boolean, n: number | undefined): Page<string> {
  const items = all.items.filter((name) => {
    try {
      return visible(name);
    } catch {
      return false;
    }
  });
  if (n === undefined || items.length <= n) return { items };
  const page = items.slice(0, n);
  return { items: page, next: page[page.length - 1] };
}

/** GET /v2/_catalog */
export const catalog: Handler = async (ctx, { registry }) => {
  const { n, last } = paging(ctx);
  const mayPull = (ctx.state as RequestState).mayPull;
  const p = mayPull ? visiblePage(await registry.catalog.list(undefined, last), (name) => mayPull(registry.namespaces.resolve(name)), n) : await registry.catalog.list(n, last);
  linkNext(ctx, '/v2/_catalog', n, p);
  json(ctx, { repositories: p.items });
};

/** end-12a/12b: GET /v2/<name>/referrers/<digest>[?artifactType=] */
export const referrers: Handler = async (ctx, { registry }, name, ref) => {
  if (!ref) throw new RegistryError(ErrorCode.DIGEST_INVALID, 'missing digest');
  const artifactType = query(ctx).get('artifactType') ?? undefined;
  const { index, filtered } = await registry.referrers.list(repoOf(ctx, registry, name), parseDigest(ref), artifactType);
  if (filtered) ctx.set('OCI-Filters-Applied', 'artifactType');
  ctx.type = MediaType.ociIndex;
  ctx.body = index;
};

/** end-1: GET /v2/ */
export const base: Handler = async (ctx) => {
  json(ctx, {});
};
