import type { Context } from 'koa';
import { timingSafeEqual } from 'node:crypto';
import { endpoints, type EndpointHandler } from './endpoints.js';

export interface OpsDeps {
  readiness: () => Promise<{ ready: boolean; checks: Record<string, unknown> }>;
  /** undefined when /metrics is served on its own listener */
  renderMetrics?: () => Promise<{ contentType: string; body: string }>;
  metricsAuth?: { username: string; password: string };
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Basic auth guard for /metrics when configured. */
export function basicAuthorized(ctx: Context, creds: { username: string; password: string } | undefined): boolean {
  if (!creds) return true;
  const m = /^Basic (.+)$/i.exec(ctx.get('authorization'));
  if (!m) return false;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i >= 0 && safeEqual(decoded.slice(0, i), creds.username) && safeEqual(decoded.slice(i + 1), creds.password);
}

export function metricsHandler(render: () => Promise<{ contentType: string; body: string }>, creds?: { username: string; password: string }) {
  return async (ctx: Context): Promise<void> => {
    ctx.state.route = 'metrics';
    if (!basicAuthorized(ctx, creds)) {
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
  if (deps.renderMetrics) table['/metrics'] = { GET: metricsHandler(deps.renderMetrics, deps.metricsAuth) };
  return endpoints(table);
}
