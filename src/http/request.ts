import type { Context } from 'koa';
import { ErrorCode, RegistryError, parseDigest, type Digest } from '../oci/index.js';
import type { RangeRequest, RepoRef, Registry } from '../core/types.js';

export const MAX_PAGE = 1000;

export function query(ctx: Context): URLSearchParams {
  const url = ctx.req.url ?? '';
  const q = url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
}

export function rawPath(ctx: Context): string {
  const url = ctx.req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** The repository a request names (recorded for the access log). */
export function repoOf(ctx: Context, registry: Pick<Registry, 'namespaces'>, name: string): RepoRef {
  const repo = registry.namespaces.resolve(name, query(ctx).get('ns') ?? undefined);
  ctx.state.repo = repo.key;
  ctx.state.upstream = repo.upstream;
  return repo;
}

/** Every media type the client accepts (several Accept headers are joined by Node with commas). */
export function acceptList(ctx: Context): string[] {
  const raw = ctx.get('accept');
  if (!raw) return [];
  return raw
    .split(',')
    .map((p) => p.split(';')[0]!.trim().toLowerCase())
    .filter((p) => p.length > 0);
}

export function paging(ctx: Context): { n?: number; last?: string } {
  const q = query(ctx);
  const nRaw = q.get('n');
  const last = q.get('last') ?? undefined;
  if (nRaw === null || nRaw === '') return { last };
  if (!/^\d+$/.test(nRaw)) throw new RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, 'n must be a non-negative integer', { detail: { n: nRaw } });
  return { n: Math.min(Number(nRaw), MAX_PAGE), last };
}

export function digestParam(value: string | null, what = 'digest'): Digest {
  if (value === null || value === '') throw new RegistryError(ErrorCode.DIGEST_INVALID, `${what} parameter is required`);
  return parseDigest(value);
}

/** `Range: bytes=a-b | a- | -n` for endpoints that serve one range (the peer endpoint). */
export function rangeHeader(ctx: Context): RangeRequest | undefined {
  const list = rangeHeaders(ctx);
  if (list && list.length > 1) throw new RegistryError(ErrorCode.RANGE_INVALID, 'one range only', { detail: { range: ctx.get('range') } });
  return list?.[0];
}

/**
 * `Range: bytes=<range>[, <range>…]`, each `a-b | a- | -n`, blanks around items allowed (RFC 9110 §14.1.2,
 * as Go's parser reads it). A malformed header is RANGE_INVALID.
 */
export function rangeHeaders(ctx: Context): RangeRequest[] | undefined {
  const raw = ctx.get('range');
  if (!raw) return undefined;
  const invalid = (message: string) => new RegistryError(ErrorCode.RANGE_INVALID, message, { detail: { range: raw } });
  const spec = /^\s*bytes=(.*)$/.exec(raw);
  if (!spec) throw invalid('unsupported Range header');
  const out: RangeRequest[] = [];
  for (const item of spec[1]!.split(',')) {
    const text = item.trim();
    if (text === '') continue;
    const m = /^(\d*)\s*-\s*(\d*)$/.exec(text);
    if (!m || (m[1] === '' && m[2] === '')) throw invalid('unsupported Range header');
    if (m[1] === '') {
      out.push({ suffix: Number(m[2]) });
      continue;
    }
    const start = Number(m[1]);
    const end = m[2] === '' ? undefined : Number(m[2]);
    if (end !== undefined && end < start) throw invalid('Range end before start');
    out.push({ start, end });
  }
  if (out.length === 0) throw invalid('unsupported Range header');
  return out;
}

/** An upload chunk's `Content-Range: a-b` (Docker's form, also `bytes a-b/*`). */
export function contentRange(ctx: Context): { start: number; end?: number } | undefined {
  const raw = ctx.get('content-range');
  if (!raw) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(raw.trim());
  if (!m) throw new RegistryError(ErrorCode.RANGE_INVALID, 'invalid Content-Range', { detail: { contentRange: raw } });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) throw new RegistryError(ErrorCode.RANGE_INVALID, 'Content-Range end before start', { detail: { contentRange: raw } });
  return { start, end };
}

export function contentLength(ctx: Context): number | undefined {
  const raw = ctx.get('content-length');
  if (!raw) return undefined;
  if (!/^\d+$/.test(raw)) throw new RegistryError(ErrorCode.SIZE_INVALID, 'invalid Content-Length');
  return Number(raw);
}

/** Whether the request carries a body (Content-Length > 0 or chunked). */
export function hasBody(ctx: Context): boolean {
  const len = ctx.get('content-length');
  if (len) return len !== '0';
  return Boolean(ctx.get('transfer-encoding'));
}

/** Reads a small body (manifests, token forms) with a hard cap, never buffering more than the cap. */
export async function readBody(ctx: Context, limit: number, tooLarge: (limit: number) => RegistryError = manifestTooLarge): Promise<Buffer> {
  const declared = contentLength(ctx);
  if (declared !== undefined && declared > limit) throw tooLarge(limit);
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

function manifestTooLarge(limit: number): RegistryError {
  return new RegistryError(ErrorCode.MANIFEST_INVALID, 'manifest too large', { status: 413, detail: { limit } });
}
