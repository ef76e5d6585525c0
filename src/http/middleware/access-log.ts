import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import type { Logger, Metrics } from '../../observability/types.js';

/** One JSON line and one metrics observation per request, after the response has gone out. */
export function accessLog(logger: Logger, metrics: Metrics, now: () => number = () => performance.now()) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    const started = now();
    const id = ctx.get('x-request-id') || randomUUID();
    ctx.state.requestId = id;
    ctx.set('X-Request-Id', id);
    try {
      await next();
    } finally {
      const done = () => {
        const seconds = (now() - started) / 1000;
        const route: string = ctx.state.route ?? 'other';
        metrics.httpRequest(route, ctx.method, ctx.status, seconds);
        logger.info(
          {
            reqId: id,
            // The connecting address, or the client behind a trusted proxy (http/forwarded.ts sets ctx.ip).
            client: ctx.ip,
            method: ctx.method,
            route,
            status: ctx.status,
            bytes: ctx.response.length ?? undefined,
            ms: Math.round(seconds * 1000),
            // Who pulled what: canonical repository, the reference asked for, the digest served.
            repo: ctx.state.repo,
            ref: ctx.state.ref,
            digest: ctx.response.get('docker-content-digest') || undefined,
            user: ctx.state.user,
            upstream: ctx.state.upstream,
            cache: ctx.state.cache,
            error: ctx.state.errorCode,
            reason: ctx.state.errorMessage,
            ua: ctx.get('user-agent') || undefined,
          },
          'request',
        );
      };
      if (ctx.res.writableFinished || ctx.res.destroyed) done();
      else ctx.res.once('close', done);
    }
  };
}
