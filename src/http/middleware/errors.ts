import type { Socket } from 'node:net';
import type { Context, Next } from 'koa';
import { ErrorCode, RegistryError, isRegistryError } from '../../oci/index.js';
import type { Logger } from '../../observability/types.js';

/** The one place a RegistryError becomes an HTTP response: `{"errors":[{code,message,detail}]}`. */
export function errors(logger: Logger) {
  return async function renderErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (e) {
      const err = isRegistryError(e) ? e : unknown(e, logger, ctx);
      if (ctx.headerSent) {
        ctx.res.destroy();
        return;
      }
      ctx.status = err.status;
      for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
      if (err.status === 401 && !ctx.response.get('WWW-Authenticate')) ctx.set('WWW-Authenticate', 'Basic realm="wharf"');
      ctx.state.errorCode = err.code;
      // Server-side failures (upstream unreachable, TLS refused, disk full) need their cause in the log line.
      if (err.status >= 500) ctx.state.errorMessage = err.message;
      const entry: Record<string, unknown> = { code: err.code, message: err.message };
      if (err.detail !== undefined) entry.detail = err.detail;
      const body = Buffer.from(JSON.stringify({ errors: [entry] }));
      ctx.set('Content-Type', 'application/json');
      if (ctx.method === 'HEAD') {
        ctx.set('Content-Length', String(body.length));
        ctx.body = null;
        ctx.status = err.status;
      } else {
        ctx.body = body;
      }
      // A body we never read: drain a small one so the client sees our answer instead of a reset while it
      // is still sending; a big one is cut off (Connection: close) rather than read in vain. A body over a
      // size limit (413) is answered at once, while the client is still sending: a small declared one is
      // discarded behind the answer (so the client can read it), anything else cut off. A client that
      // asked to close after this exchange would have its connection closed under it mid-body (EPIPE,
      // answer unread), so its small body is taken first.
      if (!ctx.req.complete) {
        if (err.status === 413 && declaredSmall(ctx) && !closesAfter(ctx)) ctx.req.resume();
        else if (!(await drained(ctx))) closeAfterAnswer(ctx);
      }
    }
  };
}

const DRAIN_LIMIT = 16 * 1024 * 1024;
/** How long a connection closed after an error answer goes on reading what the client still sends. */
const LINGER_MS = 2000;

/**
 * `Connection: close`, closed lingering (as nginx does). Closing a socket with unread bytes sends a reset,
 * and a reset destroys the answer in the client's buffer if it has not read it yet: a client still
 * sending a body that was cut at a limit lost its 413 that way more often than not (a raw loopback probe:
 * 30 of 40). So once the answer is out, the socket is half-closed and what arrives is discarded until the
 * client closes too, for at most LINGER_MS.
 */
function closeAfterAnswer(ctx: Context): void {
  ctx.set('Connection', 'close');
  // ctx.req.socket is gone once the body's reader gave up on it; the response keeps its own reference.
  const socket = ctx.res.socket as Socket | null;
  if (!socket || socket.destroyed) return;
  // Node (20) ends a Connection: close exchange with socket.destroySoon(): end, then destroy as soon as our
  // side is flushed. Replaced for this socket only; a Node that stopped calling it would just not linger.
  socket.destroySoon = function lingeringClose(this: Socket): void {
    if (this.writable) this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('end', () => this.destroy()).once('close', () => clearTimeout(timer));
    this.resume();
  };
  if (!ctx.req.destroyed) ctx.req.resume();
}

function closesAfter(ctx: Context): boolean {
  return ctx.req.httpVersion === '1.0' || /(^|,)\s*close\s*(,|$)/i.test(ctx.get('connection'));
}

function declaredSmall(ctx: Context): boolean {
  return Number(ctx.get('content-length') || NaN) <= DRAIN_LIMIT && !ctx.req.destroyed;
}

async function drained(ctx: Context): Promise<boolean> {
  if (!declaredSmall(ctx)) return false;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    ctx.req.once('end', () => {
      clearTimeout(timer);
      resolve(true);
    });
    ctx.req.once('error', () => resolve(false));
    ctx.req.resume();
  });
}

function unknown(e: unknown, logger: Logger, ctx: Context): RegistryError {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC') {
    logger.error({ err: String(e), path: ctx.path }, 'disk full');
    return new RegistryError(ErrorCode.UNAVAILABLE, 'storage is full', { status: 507 });
  }
  if (ctx.req.destroyed || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return new RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, 'request body ended early');
  }
  logger.error({ err: e instanceof Error ? { message: e.message, stack: e.stack } : String(e), method: ctx.method, path: ctx.path }, 'unhandled error');
  return new RegistryError(ErrorCode.UNKNOWN, 'internal error');
}
