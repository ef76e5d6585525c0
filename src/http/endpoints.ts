import type { Context, Next } from 'koa';
import { ErrorCode, RegistryError } from '../oci/index.js';
import { rawPath } from './request.js';

export type EndpointHandler = (ctx: Context) => Promise<void> | void;

/** Raw path → method → handler. A GET also answers HEAD. */
export type EndpointTable = Readonly<Record<string, Readonly<Partial<Record<string, EndpointHandler>>>>>;

export interface EndpointOptions {
  /**
   * Every raw path starting with this passes `guard` before anything else happens, known endpoint or not
   * (an unknown one is then 404, a wrong method 405).
   */
  prefix?: string;
  /** Throws to refuse the request. */
  guard?: (ctx: Context) => void | Promise<void>;
}

/**
 * wharf's one path rule, shared by every guard and every route outside /v2 (whose table, routes.ts, matches
 * the same raw path): the request target's path exactly as sent — before percent-decoding, dot-segment
 * removal or slash merging — compared case-sensitively. A spelling that is not exactly an endpoint's
 * (`/_Wharf/…`, `//`, `%2F`, `%5F`, `/./`, a trailing slash) is no endpoint at all, so it can never reach
 * a handler without the guard that the exact spelling gets. Koa routers are not used for this: they
 * match case-insensitively and on the decoded path by default, which is how a guard and its routes came
 * to disagree.
 */
export function endpoints(table: EndpointTable, opts: EndpointOptions = {}) {
  return async function dispatch(ctx: Context, next: Next): Promise<void> {
    const path = rawPath(ctx);
    const methods = Object.hasOwn(table, path) ? table[path] : undefined;
    const guarded = opts.prefix !== undefined && rawPathAfter(ctx, opts.prefix) !== undefined;
    if (!methods && !guarded) return next();
    if (guarded) await opts.guard?.(ctx);
    if (!methods) throw new RegistryError(ErrorCode.UNSUPPORTED, 'unknown endpoint', { status: 404 });
    const handler = methods[ctx.method] ?? (ctx.method === 'HEAD' ? methods.GET : undefined);
    if (!handler) {
      ctx.set('Allow', allowed(methods).join(', '));
      throw new RegistryError(ErrorCode.UNSUPPORTED, `method ${ctx.method} not allowed here`, { status: 405 });
    }
    await handler(ctx);
  };
}

/** The raw path after `prefix` when the raw path starts with it (the same rule, for endpoints with a parameter). */
export function rawPathAfter(ctx: Context, prefix: string): string | undefined {
  const path = rawPath(ctx);
  return path.startsWith(prefix) ? path.slice(prefix.length) : undefined;
}

function allowed(methods: Partial<Record<string, EndpointHandler>>): string[] {
  const list = Object.keys(methods);
  return list.includes('GET') && !list.includes('HEAD') ? [...list, 'HEAD'] : list;
}
