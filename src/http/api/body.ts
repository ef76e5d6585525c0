import type { Context } from 'koa';
import { ErrorCode, RegistryError } from '../../oci/index.js';

/** The API's request bodies are small JSON objects (a login, a job to start). */
const MAX_BODY = 8 * 1024;

export async function readJson(ctx: Context): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/i.test(ctx.get('content-type'))) throw badRequest('send application/json');
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of ctx.req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) throw new RegistryError(ErrorCode.SIZE_INVALID, 'body too large', { status: 413 });
    chunks.push(c);
  }
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw badRequest('body must be a JSON object');
}

export function badRequest(message: string): RegistryError {
  return new RegistryError(ErrorCode.UNSUPPORTED, message, { status: 400 });
}
