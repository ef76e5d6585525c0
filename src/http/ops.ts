import type { Context } from 'koa';
import { timingSafeEqual } from 'node:crypto';
import { endpoints, type EndpointHandler } from './endpoints.js';

export interface OpsDeps {
  readiness: () => Promise<{ ready: boolean; checks: Record<string, unknown> }>;
  /** undefined when /metrics is served on its own listener */
  renderMetrics?: () => Promise<{ contentType: string; body: string }>;
  /** who may scrape /metrics (scrapeCheck); undefined = anyone */
  mayScrape?: ScrapeCheck;
}

/** Whether a request may read /metrics. */
export type ScrapeCheck = (ctx: Context) => Promise<boolean>;

export interface ScrapeAccess {
  /** `metrics.username` / `metrics.password`: a pair of its own, for /metrics only */
  basic?: { username: string; password: string };
  /** `metrics.auth`: users of client auth who may scrape */
  users?: readonly string[];
  /** the user a request authenticates as with client auth (password or static token; never a signed pull token) */
  user?: (ctx: Context) => Promise<string | undefined>;
}

/**
 * The /metrics guard: the metrics pair, or one of the `metrics.auth` users, whichever is configured (either
 * passes when both are); undefined when neither is, and /metrics is open.
 */
export function scrapeCheck(access: ScrapeAccess): ScrapeCheck | undefined {
  const users = new Set(access.users ?? []);
  const { basic, user } = access;
  if (!basic && users.size === 0) return undefined;
  return async (ctx) => {
    if (basic && basicAuthorized(ctx, basic)) return true;
    if (users.size === 0 || !user || ctx.get('authorization') === '') return false;
    // Wrong credentials (or a login flood answered 429) are simply no scrape: 401.
    const who = await user(ctx).catch(() => undefined);
    return who !== undefined && users.has(who);
  };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Basic auth against one configured pair (the /metrics and admin credentials); true when none is configured. */
export function basicAuthorized(ctx: Context, creds: { username: string; password: string } | undefined): boolean {
  if (!creds) return true;
  const m = /^Basic (.+)$/i.exec(ctx.get('authorization'));
  if (!m) return false;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i >= 0 && safeEqual(decoded.slice(0, i), creds.username) && safeEqual(decoded.slice(i + 1), creds.password);
}

export function metricsHandler(render: () => Promise<{ contentType: string; body: string }>, mayScrape?: ScrapeCheck) {
  return async (ctx: Context): Promise<void> => {
    ctx.state.route = 'metrics';
    if (mayScrape && !(await mayScrape(ctx))) {
      ctx.status = 401;
      ctx.set('WWW-Authenticate', 'Basic realm="wharf metrics"');
      return;
    }
    const { contentType, body } = await render();
    ctx.type = contentType;
    ctx.body = body;
  };
}

/** /healthz, /readyz and (unless it has its own listener) /metrics, on the one path rule (endpoints.ts). */
export function opsEndpoint(deps: OpsDeps) {
  const table: Record<string, Record<string, EndpointHandler>> = {
    '/healthz': {
      GET: (ctx) => {
        ctx.state.route = 'healthz';
        ctx.body = { status: 'ok' };
      },
    },
    '/readyz': {
      GET: async (ctx) => {
        ctx.state.route = 'readyz';
        const r = await deps.readiness();
        ctx.status = r.ready ? 200 : 503;
        ctx.body = r;
      },
    },
  };
  if (deps.renderMetrics) table['/metrics'] = { GET: metricsHandler(deps.renderMetrics, deps.mayScrape) };
  return endpoints(table);
}
