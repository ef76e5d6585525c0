import type { Context } from 'koa';
import type { Browser } from '../../core/browse-types.js';
import type { RepoRef, Registry } from '../../core/types.js';
import { ErrorCode, RegistryError, parseName, parseReference, type Reference } from '../../oci/index.js';
import { fromLoopback } from '../admin.js';
import type { ClientAuth } from '../middleware/client-auth.js';
import { endpoints } from '../endpoints.js';
import { query } from '../request.js';
import { MAX_PER_PAGE, SORT_KEYS, queryRepositories, type RepositoryQuery, type SortKey } from './search.js';
import type { ExternalViewers } from './external-viewer.js';
import { SESSION_COOKIE, sessionCookie, type Sessions } from './session.js';
import { checkCsrf, loginRequired, userOf, viewerOf, type Viewer } from './viewer.js';
import { badRequest, readJson } from './body.js';
import { jobEndpoints, mayMaintain, type MaintenanceDeps } from './jobs.js';

export const API_PREFIX = '/_wharf/api/';

/** The cache dashboard's figures (composed in app.ts from the metrics registry and the size report). */
export interface ApiStats {
  /** cache lookups answered without an upstream fetch (hit, coalesced, stale): the metrics' hit ratio numerator */
  hits: number;
  requests: number;
  hitRatio: number | null;
  bytesFromCache: number;
  bytesFromUpstream: number;
  inflightFetches: number;
  cache: { usedBytes: number; localBytes: number; mirroredBytes: number; blobs: number; maxSize?: number; highWatermark: number } & StatsCacheDetail;
  upstreams: Array<{
    name: string;
    rateLimit?: { limit: number; remaining: number } | object;
    /** what this replica has seen of the upstream (no probes): see README "Web UI" */
    health?: { state: 'ok' | 'failing' | 'unknown'; lastSuccess?: number; lastError?: { at: number; message: string }; failures: number };
    /** quota-consuming requests are held back until then (ms since epoch) after a 429 */
    throttledUntil?: number;
  }>;
  /** downloads from upstreams running on this replica now, oldest first (repositories the viewer may pull) */
  downloads: Array<{ repository: string; digest: string; upstream: string; received: number; size?: number; clients: number; startedAt: number }>;
  /** the most pulled repositories, cluster-wide (repositories the viewer may pull) */
  topPulls: { hour: PullCount[]; day: PullCount[] };
}

export interface PullCount {
  repository: string;
  pulls: number;
}

/** What `wharf stats` prints beyond the dashboard (added fields; the whole cache, not one viewer's share). */
export interface ApiStats {
  /** mirrored bytes the upstream did not have to send (wharf_bytes_spared_total) */
  bytesSpared: number;
  repositories: { total: number; local: number; mirrored: number };
  tags: number;
  /** uploads in progress */
  uploads: number;
}

export interface StatsCacheDetail {
  lowWatermark: number;
  mirroredBlobs: number;
  localBlobs: number;
  /** blobs linked to no repository (what `wharf gc` removes) */
  unlinkedBytes: number;
  unlinkedBlobs: number;
}

export interface ApiDeps {
  registry: Pick<Registry, 'namespaces' | 'manifests'>;
  browser: Browser;
  /** client auth of /v2; absent (and external absent): the registry is open and so is the API */
  auth?: ClientAuth;
  /** external token mode (auth.token.rootcertbundle/jwks): logins and rights come from the token service */
  external?: ExternalViewers;
  sessions?: Sessions;
  /** the admin service's purge (mirrored images) */
  purge?: (ref: string) => Promise<object>;
  /** the figures, listing only repositories (by the name clients use) for which `visible` holds */
  /** pulls over the last day by repository key (the list's pulls column); absent when pulls are not counted */
  pullCounts?: () => Promise<ReadonlyMap<string, number>>;
  stats: (visible: (repository: string) => boolean) => Promise<ApiStats>;
  /** `ui.pullHost` */
  pullHost?: string;
  upstreams: readonly string[];
  /** gc and verify as background jobs (jobs.ts); absent without a serving lifecycle */
  maintenance?: MaintenanceDeps;
}

/** `/_wharf/api/…`: the JSON the web UI reads (documented in README "Web UI"). Raw path, case-sensitive (endpoints.ts). */
export function apiEndpoint(d: ApiDeps) {
  const viewer = (ctx: Context) => viewerOf(ctx, { auth: d.auth, sessions: d.sessions, external: d.external });
  /** The viewer, with its rights on these repositories asked first where the token service decides. */
  const viewerFor = async (ctx: Context, repo: RepoRef) => {
    const v = await viewer(ctx);
    await v.load?.([repo]);
    return v;
  };
  const repoOf = (name: string | null): RepoRef => {
    if (name === null || name === '') throw badRequest('name is required');
    return d.registry.namespaces.resolve(parseName(name));
  };
  /** Pull right or "not known": the API does not tell what exists to someone who may not see it. */
  const visible = (v: Viewer, repo: RepoRef, name: string) => {
    if (!v.rights(repo).has('pull')) throw new RegistryError(ErrorCode.NAME_UNKNOWN, undefined, { detail: { name } });
  };

  return endpoints(
    {
      [`${API_PREFIX}session`]: {
        GET: async (ctx) => {
          const v = await viewer(ctx);
          ctx.body = {
            authEnabled: authOn(d),
            user: userOf(v) ?? null,
            csrf: v.session?.csrf ?? null,
            expires: v.session?.expires ?? null,
            pullHost: d.pullHost ?? null,
            upstreams: d.upstreams,
            maintain: mayMaintain(ctx, { authEnabled: authOn(d), ...(d.maintenance ? { maintenance: d.maintenance } : {}) }, v),
          };
        },
        POST: async (ctx) => {
          const auth = d.auth;
          const sessions = d.sessions;
          if ((!auth && !d.external) || !sessions) throw badRequest('this registry has no users to log in as (auth is not configured)');
          checkCsrf(ctx, { caller: { kind: 'anonymous' }, rights: () => new Set() }, undefined);
          const body = await readJson(ctx);
          const username = typeof body.username === 'string' ? body.username : '';
          const password = typeof body.password === 'string' ? body.password : '';
          if (username === '' || password === '') throw loginRequired('invalid username or password');
          let issued: ReturnType<Sessions['issue']>;
          if (d.external) {
            // The token service checks the password; the session keeps it sealed, since the service asks again.
            const user = await d.external.login({ username, password }, ctx.ip);
            issued = sessions.issue(user, { username, password });
          } else {
            if (!(await auth!.checkPassword(username, password, ctx.ip))) throw loginRequired('invalid username or password');
            issued = sessions.issue(username);
          }
          const { cookie, session } = issued;
          ctx.set('Set-Cookie', sessionCookie(cookie, Math.floor(sessions.ttlMs / 1000), ctx.protocol === 'https'));
          ctx.body = { user: session.user, csrf: session.csrf, expires: session.expires };
        },
        DELETE: async (ctx) => {
          const v = await viewer(ctx);
          checkCsrf(ctx, v, d.sessions);
          const cleared = `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${ctx.protocol === 'https' ? '; Secure' : ''}`;
          // The cookie's value would stay valid until it expires: remember the logout where every replica looks.
          if (v.session && d.sessions && !(await d.sessions.revoke(v.session))) {
            throw new RegistryError(ErrorCode.UNAVAILABLE, 'logged out in this browser, but the session could not be revoked (metadata store unavailable); it stays valid until it expires', {
              headers: { 'Set-Cookie': cleared },
            });
          }
          ctx.set('Set-Cookie', cleared);
          ctx.status = 204;
        },
      },
      [`${API_PREFIX}repositories`]: {
        GET: async (ctx) => {
          const v = await viewer(ctx);
          const repos = (await d.browser.repositories()).map((r) => ({ r, ref: d.registry.namespaces.resolve(r.name) }));
          await v.load?.(repos.map((x) => x.ref));
          const all = repos.filter((x) => v.rights(x.ref).has('pull')).map((x) => x.r);
          ctx.body = queryRepositories(all, repositoryQuery(query(ctx)), await d.pullCounts?.().catch(() => undefined));
        },
      },
      [`${API_PREFIX}repository`]: {
        GET: async (ctx) => {
          const name = query(ctx).get('name');
          const repo = repoOf(name);
          const v = await viewerFor(ctx, repo);
          visible(v, repo, name!);
          const summary = await d.browser.repository(repo.key);
          if (!summary) throw new RegistryError(ErrorCode.NAME_UNKNOWN, undefined, { detail: { name } });
          ctx.body = { ...summary, rights: [...v.rights(repo)].sort(), canPurge: canPurge(ctx, d, v, repo) };
        },
      },
      [`${API_PREFIX}image`]: {
        GET: async (ctx) => {
          const q = query(ctx);
          const repo = repoOf(q.get('name'));
          const v = await viewerFor(ctx, repo);
          visible(v, repo, q.get('name')!);
          const digest = await resolve(d, repo, reference(q.get('ref')));
          const image = digest && (await d.browser.image(repo.key, digest));
          if (!image) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { ref: q.get('ref') } });
          ctx.body = { ...image, rights: [...v.rights(repo)].sort(), canPurge: canPurge(ctx, d, v, repo) };
        },
        DELETE: async (ctx) => {
          const q = query(ctx);
          const name = q.get('name');
          const repo = repoOf(name);
          const v = await viewerFor(ctx, repo);
          checkCsrf(ctx, v, d.sessions);
          visible(v, repo, name!);
          if (!v.rights(repo).has('delete')) throw denied(v, name!);
          const ref = reference(q.get('ref'));
          const origin = await originOf(d, repo, ref);
          if (origin === undefined) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { ref: q.get('ref') } });
          if (origin === 'local') {
            await d.registry.manifests.delete(repo, ref);
            d.browser.invalidate();
            ctx.body = { deleted: `${name}${ref.kind === 'tag' ? `:${ref.tag}` : `@${ref.digest}`}`, origin };
            return;
          }
          if (!d.purge || !canPurge(ctx, d, v, repo)) throw denied(v, name!);
          const report = await d.purge(`${name}${ref.kind === 'tag' ? `:${ref.tag}` : `@${ref.digest}`}`);
          d.browser.invalidate();
          ctx.body = { purged: report, origin };
        },
      },
      [`${API_PREFIX}jobs`]: jobEndpoints({
        authEnabled: authOn(d),
        viewer,
        ...(d.maintenance ? { maintenance: d.maintenance } : {}),
        ...(d.sessions ? { sessions: d.sessions } : {}),
      }),
      [`${API_PREFIX}stats`]: {
        GET: async (ctx) => {
          // Upstream names, quota and traffic: what metrics.auth can close on /metrics is not open here either.
          const v = await viewer(ctx);
          if (authOn(d) && v.caller.kind === 'anonymous') throw loginRequired('log in to see the cache figures');
          // Behind a token service, rights are asked first (batched, cached): those of every listed repository.
          if (v.load) await v.load((await d.browser.repositories()).map((r) => d.registry.namespaces.resolve(r.name)));
          ctx.body = await d.stats((name) => {
            try {
              return v.rights(d.registry.namespaces.resolve(name)).has('pull');
            } catch {
              return false; // a name no configured namespace takes any more: nobody's to see
            }
          });
        },
      },
    },
    {
      prefix: API_PREFIX,
      guard: (ctx) => {
        ctx.state.route = 'api';
        ctx.set('Cache-Control', 'no-store');
        ctx.set('X-Content-Type-Options', 'nosniff');
      },
    },
  );
}

/**
 * Purging a mirrored image: the `delete` grant on the repository when clients authenticate; on an open
 * registry, the admin API's rule (callers on this host only), since anyone could otherwise empty the cache.
 */
function canPurge(ctx: Context, d: ApiDeps, v: Viewer, repo: RepoRef): boolean {
  if (!d.purge) return false;
  return authOn(d) ? v.rights(repo).has('delete') : fromLoopback(ctx);
}

/** Whether callers authenticate (wharf's own users, or an external token service). */
function authOn(d: ApiDeps): boolean {
  return d.auth !== undefined || d.external !== undefined;
}

function denied(v: Viewer, name: string): RegistryError {
  if (v.caller.kind === 'anonymous') return loginRequired('log in to delete');
  return new RegistryError(ErrorCode.DENIED, 'requested access to the resource is denied', { detail: { repository: name, actions: ['delete'] } });
}

function reference(ref: string | null): Reference {
  if (ref === null || ref === '') throw badRequest('ref (a tag or a digest) is required');
  return parseReference(ref);
}

async function resolve(d: ApiDeps, repo: RepoRef, ref: Reference) {
  if (ref.kind === 'digest') return ref.digest;
  return (await d.browser.tag(repo.key, ref.tag))?.digest;
}

async function originOf(d: ApiDeps, repo: RepoRef, ref: Reference): Promise<'local' | 'upstream' | undefined> {
  if (ref.kind === 'tag') return (await d.browser.tag(repo.key, ref.tag))?.origin;
  return (await d.browser.image(repo.key, ref.digest))?.origin;
}

function repositoryQuery(q: URLSearchParams): RepositoryQuery {
  const sort = q.get('sort') ?? 'name';
  if (!(SORT_KEYS as readonly string[]).includes(sort)) throw badRequest(`sort must be one of ${SORT_KEYS.join(', ')}`);
  const kind = q.get('kind') ?? '';
  if (kind !== '' && kind !== 'local' && kind !== 'mirrored') throw badRequest('kind must be local or mirrored');
  const order = q.get('order') ?? (sort === 'name' ? 'asc' : 'desc');
  if (order !== 'asc' && order !== 'desc') throw badRequest('order must be asc or desc');
  const page = whole(q.get('page'), 1, 'page');
  const perPage = Math.min(whole(q.get('perPage'), 50, 'perPage'), MAX_PER_PAGE);
  const upstream = q.get('upstream');
  const detail = q.get('detail') ?? '';
  if (detail !== '' && detail !== 'tags') throw badRequest('detail must be tags');
  return {
    ...(detail === 'tags' ? { withTags: true } : {}),
    q: q.get('q') ?? '',
    ...(kind !== '' ? { kind } : {}),
    ...(upstream ? { upstream } : {}),
    sort: sort as SortKey,
    order,
    page,
    perPage,
  };
}

function whole(v: string | null, fallback: number, what: string): number {
  if (v === null || v === '') return fallback;
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw badRequest(`${what} must be a positive whole number`);
  return Number(v);
}
