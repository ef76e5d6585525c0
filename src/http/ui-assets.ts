import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Context, Next } from 'koa';
import type { Logger } from '../observability/types.js';
import { rawPath } from './request.js';

/**
 * The web UI's Content-Security-Policy: scripts, styles and connections to this origin only (no inline
 * script, no other host), no framing, no plugins.
 */
export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const ASSET = /^\/assets\/([A-Za-z0-9_-]+\.[A-Za-z0-9]{6,}\.(?:js|css|svg))$/;
const TYPES: Record<string, string> = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>wharf: web UI not built</title>
<h1>The web UI is not built</h1><p>Build it with <code>make build</code> (or start wharf with <code>make run</code>, which builds it), then reload.
The registry API under /v2/ works without it.</p>`;

function securityHeaders(ctx: Context): void {
  ctx.set('Content-Security-Policy', UI_CSP);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
}

/**
 * Serves the built UI (dist/ui: index.html + content-hashed assets) at `/` and `/assets/…`, matching the raw
 * path exactly. index.html is revalidated on every load; hashed assets are cached for a year. A missing
 * build is a log line at start and a 404 page that says how to build, never a crash.
 */
export function uiAssets(dir: string | undefined, logger: Logger) {
  if (!dir || !existsSync(join(dir, 'index.html'))) logger.warn({ dir }, 'web UI not built: / answers 404 until `make build` is run');
  else logger.info({ dir }, 'web UI served at /');
  let index: Buffer | undefined;
  return async function serveUi(ctx: Context, next: Next): Promise<void> {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    const path = rawPath(ctx);
    if (path === '/' || path === '/index.html') {
      ctx.state.route = 'ui';
      securityHeaders(ctx);
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = 'text/html; charset=utf-8';
      index ??= dir ? await readFile(join(dir, 'index.html')).catch(() => undefined) : undefined;
      if (!index) ctx.status = 404;
      ctx.body = index ?? NOT_BUILT;
      return;
    }
    const m = ASSET.exec(path);
    if (!m || !dir) return next();
    ctx.state.route = 'ui';
    const file = join(dir, 'assets', m[1]!);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return next();
    securityHeaders(ctx);
    ctx.set('Cache-Control', 'public, max-age=31536000, immutable');
    ctx.type = TYPES[m[1]!.slice(m[1]!.lastIndexOf('.') + 1)]!;
    ctx.length = st.size;
    ctx.body = await readFile(file);
  };
}
