import { ErrorCode, RegistryError } from '../oci/index.js';

/** What a request was for: a 404 means a different thing for each. */
export type RequestKind = 'manifest' | 'blob' | 'tags' | 'referrers' | 'auth';

/** Seconds a 429 blocks when the upstream sends no usable Retry-After. */
export const DEFAULT_RETRY_AFTER = 60;

/** The one table from upstream status to what wharf's clients see. */
const byStatus: ReadonlyArray<{ when: (status: number) => boolean; code: (kind: RequestKind) => ErrorCode; what: string }> = [
  {
    when: (s) => s === 404,
    code: (k) => (k === 'blob' ? ErrorCode.BLOB_UNKNOWN : k === 'tags' ? ErrorCode.NAME_UNKNOWN : ErrorCode.MANIFEST_UNKNOWN),
    what: 'not found',
  },
  { when: (s) => s === 401, code: () => ErrorCode.UNAUTHORIZED, what: 'refused our credentials' },
  { when: (s) => s === 403, code: () => ErrorCode.DENIED, what: 'denied access' },
  { when: (s) => s === 416, code: () => ErrorCode.RANGE_INVALID, what: 'refused the range' },
  { when: (s) => s === 429, code: () => ErrorCode.TOOMANYREQUESTS, what: 'is rate limiting us' },
  { when: (s) => s >= 500, code: () => ErrorCode.UNAVAILABLE, what: 'failed' },
];

/** Maps an upstream answer that is not a success to a RegistryError (429 carries Retry-After). */
export function statusError(
  upstream: string,
  kind: RequestKind,
  status: number,
  headers: Record<string, string | string[] | undefined> = {},
  now: number = Date.now(),
): RegistryError {
  const row = byStatus.find((r) => r.when(status));
  const code = row ? row.code(kind) : ErrorCode.UNAVAILABLE;
  const what = row ? row.what : 'answered unexpectedly';
  const opts: { headers?: Record<string, string>; detail: unknown } = { detail: { upstream, status } };
  if (code === ErrorCode.TOOMANYREQUESTS) {
    opts.headers = { 'Retry-After': String(retryAfterSeconds(headerValue(headers['retry-after']), now)) };
  }
  return new RegistryError(code, `upstream ${upstream} ${what} (${kind}: HTTP ${status})`, opts);
}

/** Connection refused, reset, DNS failure, timeouts: the upstream is unavailable. */
export function networkError(upstream: string, kind: RequestKind, err: unknown): RegistryError {
  if (err instanceof RegistryError) return err;
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string; message?: string } };
  const why = e?.code ?? e?.name ?? 'error';
  // A refused certificate is a configuration problem, not an outage: say so, and what fixes it.
  const tlsErr = tlsProblem(e?.code) !== undefined ? e : e?.cause;
  const tls = tlsProblem(tlsErr?.code);
  if (tls !== undefined) {
    const text = tlsErr?.message ? `: ${tlsErr.message}` : '';
    return new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${upstream}: TLS ${tls} (${kind}: ${tlsErr?.code}${text})`, {
      detail: { upstream, tls: tlsErr?.code },
      cause: err,
    });
  }
  return new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${upstream} unreachable (${kind}: ${why})`, {
    detail: { upstream },
    cause: err,
  });
}

/** OpenSSL verification codes Node reports on a refused server certificate. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
]);

function tlsProblem(code: string | undefined): string | undefined {
  if (code === undefined) return undefined;
  if (UNTRUSTED.has(code)) return 'certificate not trusted; set tls.caFile to the CA that signed it';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'certificate does not name this host; check the url, or set tls.servername';
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'certificate outside its validity period';
  return undefined;
}

/** Thrown when upstream content does not hash to the digest it was asked for; core counts these. */
export class UpstreamDigestMismatchError extends RegistryError {
  constructor(
    readonly upstream: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(ErrorCode.DIGEST_INVALID, `upstream ${upstream} sent content for ${expected} that hashes to ${actual}`, {
      status: 502,
      detail: { upstream, expected, actual },
    });
    this.name = 'UpstreamDigestMismatchError';
  }
}

export function isDigestMismatch(e: unknown): e is UpstreamDigestMismatchError {
  return e instanceof UpstreamDigestMismatchError;
}

/** Retry-After is delta-seconds or an HTTP-date; anything unusable means the default. */
export function retryAfterSeconds(value: string | undefined, now: number): number {
  if (value === undefined || value.trim() === '') return DEFAULT_RETRY_AFTER;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  if (Number.isNaN(at)) return DEFAULT_RETRY_AFTER;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

export function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}
