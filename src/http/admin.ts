import type { Context } from 'koa';
import { endpoints, type EndpointTable } from './endpoints.js';
import { viaTrustedProxy } from './forwarded.js';
import { ErrorCode, RegistryError, parseDigest, type Digest } from '../oci/index.js';
import { basicAuthorized } from './ops.js';

/** What the admin routes call (core/admin-service implements it); results are sent as JSON. */
export interface AdminApi {
  stats(): Promise<object>;
  repositories(name?: string): Promise<object[]>;
  gc(opts: { dryRun: boolean; graceMs?: number }): Promise<object>;
  purge(ref: string): Promise<object>;
  verify(): Promise<object>;
  evict(): Promise<object>;
  cached(digests: Digest[]): Promise<Digest[]>;
}

/** gc and verify as jobs (core/jobs.ts): one at a time per process, shared with the web UI's Maintenance page. */
export interface AdminJobs {
  run(kind: 'gc' | 'verify', opts: { dryRun: boolean; graceMs?: number }, startedBy: string): { running: object } | { finished: Promise<object> };
}

export interface AdminRouterDeps {
  admin: AdminApi;
  /** absent: gc and verify run directly, without the one-at-a-time rule (a wharf without the web UI's jobs) */
  jobs?: AdminJobs;
  /** `admin.username` / `admin.password`; when absent the admin API is open, like the registry API without auth */
  credentials?: { username: string; password: string };
  /** webhook endpoints (`wharf events`); absent when none is configured */
  events?: {
    status(): Promise<object[]>;
    retry(endpoint?: string): boolean;
    /** events queued again for one endpoint; undefined: no such endpoint */
    resend(endpoint: string, from: EventBound, to?: EventBound): Promise<number | undefined>;
  };
}

export const ADMIN_PREFIX = '/_wharf/admin';
const MAX_CACHED_QUERY = 10_000;

const isLoopback = (addr: string): boolean => addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
const FORWARDING = ['x-forwarded-for', 'forwarded', 'x-real-ip'];

/**
 * A caller on this host. `ctx.ip` is the client behind a trusted proxy (forwarded.ts), else the peer. A
 * loopback peer that is not a trusted proxy but forwards for someone (a reverse proxy on the same host)
 * says so in its headers: its clients are not local callers.
 */
export function fromLoopback(ctx: Pick<Context, 'req' | 'ip' | 'get' | 'state'>): boolean {
  if (!isLoopback(ctx.ip || (ctx.req.socket.remoteAddress ?? ''))) return false;
  return viaTrustedProxy(ctx) || FORWARDING.every((h) => ctx.get(h) === '');
}

type AdminHandler = (ctx: Context, admin: AdminApi, deps: AdminRouterDeps) => Promise<void>;

/** Path under ADMIN_PREFIX → method → handler (matched by endpoints.ts's one path rule). */
const ADMIN_TABLE: Record<string, Record<string, AdminHandler>> = {
  '/stats': {
    GET: async (ctx, admin) => {
      ctx.body = await admin.stats();
    },
  },
  '/repositories': {
    GET: async (ctx, admin) => {
      const repo = single(ctx, 'repo');
      ctx.body = { repositories: await admin.repositories(repo === undefined || repo === '' ? undefined : repo) };
    },
  },
  '/gc': {
    POST: async (ctx, admin, deps) => {
      const grace = single(ctx, 'graceMs');
      let graceMs: number | undefined;
      if (grace !== undefined) {
        graceMs = Number(grace);
        if (!Number.isSafeInteger(graceMs) || graceMs < 0) throw badRequest('graceMs must be a whole number of milliseconds');
      }
      const opts = { dryRun: flag(single(ctx, 'dryRun')), ...(graceMs !== undefined ? { graceMs } : {}) };
      ctx.body = deps.jobs ? await asJob(deps.jobs, 'gc', opts) : await admin.gc(opts);
    },
  },
  '/images': {
    DELETE: async (ctx, admin) => {
      const ref = single(ctx, 'ref');
      if (!ref) throw badRequest('ref is required (name[:tag|@digest])');
      ctx.body = await admin.purge(ref);
    },
  },
  '/verify': {
    POST: async (ctx, admin, deps) => {
      ctx.body = deps.jobs ? await asJob(deps.jobs, 'verify', { dryRun: false }) : await admin.verify();
    },
  },
  '/evict': {
    POST: async (ctx, admin) => {
      ctx.body = await admin.evict();
    },
  },
  '/events': {
    GET: async (ctx, _admin, deps) => {
      ctx.body = { endpoints: deps.events ? await deps.events.status() : [] };
    },
  },
  '/events/retry': {
    POST: async (ctx, _admin, deps) => {
      const endpoint = single(ctx, 'endpoint') || undefined;
      if (!deps.events?.retry(endpoint)) throw new RegistryError(ErrorCode.NAME_UNKNOWN, 'no such notification endpoint', { status: 404, detail: { endpoint } });
      ctx.body = { retried: endpoint ?? 'all' };
    },
  },
  '/events/resend': {
    POST: async (ctx, _admin, deps) => {
      const endpoint = single(ctx, 'endpoint');
      if (!endpoint) throw badRequest('endpoint is required');
      const fromArg = single(ctx, 'from');
      if (!fromArg) throw badRequest('from is required (an event id or a time)');
      const toArg = single(ctx, 'to');
      const resent = await deps.events?.resend(endpoint, eventBound('from', fromArg), toArg ? eventBound('to', toArg) : undefined);
      if (resent === undefined) throw new RegistryError(ErrorCode.NAME_UNKNOWN, 'no such notification endpoint', { status: 404, detail: { endpoint } });
      ctx.body = { endpoint, resent };
    },
  },
  '/cached': {
    GET: async (ctx, admin) => {
      const raw = ctx.query.digests;
      const list = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).flatMap((v) => v.split(',')).filter((v) => v !== '');
      if (list.length > MAX_CACHED_QUERY) throw badRequest(`at most ${MAX_CACHED_QUERY} digests per request`);
      ctx.body = { cached: await admin.cached(list.map((d) => parseDigest(d))) };
    },
  },
};

/** Every admin endpoint (full path, method): what the path-spelling tests walk. */
export const ADMIN_ENDPOINTS: ReadonlyArray<{ method: string; path: string }> = Object.entries(ADMIN_TABLE).flatMap(([path, methods]) =>
  Object.keys(methods).map((method) => ({ method, path: ADMIN_PREFIX + path })),
);

/**
 * `/_wharf/admin/…`: JSON operator endpoints. With admin credentials configured they need Basic auth;
 * without, they answer loopback callers only (the CLI on the same host, `docker exec`), since purge and
 * gc must not be open to everyone who can pull. The guard covers every raw path under the prefix, and
 * only exact raw paths reach a handler (endpoints.ts).
 */
export function adminEndpoint(deps: AdminRouterDeps) {
  const { admin } = deps;
  const table: EndpointTable = Object.fromEntries(
    Object.entries(ADMIN_TABLE).map(([path, methods]) => [
      ADMIN_PREFIX + path,
      Object.fromEntries(Object.entries(methods).map(([method, handler]) => [method, (ctx: Context) => handler(ctx, admin, deps)])),
    ]),
  );
  return endpoints(table, {
    prefix: ADMIN_PREFIX,
    guard: (ctx) => {
      ctx.state.route = 'admin';
      if (!deps.credentials && !fromLoopback(ctx)) {
        throw new RegistryError(ErrorCode.DENIED, 'the admin API answers loopback only; set admin.username and admin.password to use it remotely');
      }
      if (!basicAuthorized(ctx, deps.credentials)) {
        throw new RegistryError(ErrorCode.UNAUTHORIZED, 'admin credentials required', { headers: { 'WWW-Authenticate': 'Basic realm="wharf admin"' } });
      }
    },
  });
}

/** An end of an event range: an event id (a UUID), or a time (RFC 3339, or ms since the epoch). */
export type EventBound = { id: string } | { time: number };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function eventBound(name: string, v: string): EventBound {
  if (UUID.test(v)) return { id: v.toLowerCase() };
  const time = /^\d+$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}T/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(time)) throw badRequest(`${name} must be an event id or a time (RFC 3339, or ms since the epoch)`);
  return { time };
}

/** The admin API waits for its job to end, as it always waited for gc / verify; the UI's list shows it meanwhile. */
async function asJob(jobs: AdminJobs, kind: 'gc' | 'verify', opts: { dryRun: boolean; graceMs?: number }): Promise<object> {
  const r = jobs.run(kind, opts, 'admin API');
  if ('running' in r) throw jobBusy(r.running);
  return r.finished;
}

/** 409: a gc or verify is running in this process (its job in `detail.job`). */
export function jobBusy(job: object): RegistryError {
  return new RegistryError(ErrorCode.UNAVAILABLE, 'a gc or verify is already running; try again when it has finished', { status: 409, detail: { job } });
}

function single(ctx: Context, name: string): string | undefined {
  const v = ctx.query[name];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

function flag(v: string | undefined): boolean {
  return v !== undefined && v !== '0' && v.toLowerCase() !== 'false';
}

function badRequest(message: string): RegistryError {
  return new RegistryError(ErrorCode.UNSUPPORTED, message, { status: 400 });
}
