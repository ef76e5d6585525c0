/**
 * Credentials inside free text: an error message that quotes a header, a URL with user info or a
 * signed query. Key-based redaction (logger.ts) cannot see these, so every string a log line carries
 * passes through here.
 */
const PATTERNS: ReadonlyArray<[RegExp, string]> = [
  // Authorization values, wherever they are quoted: a credential has a digit or a base64/JWT symbol,
  // which tells it from prose ("upstream basic refused") and from challenge parameters (realm=")
  [/\b(Bearer|Basic)\s+(?![A-Za-z_]+=")(?=[A-Za-z._~-]*[0-9+/=])[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [Redacted]'],
  // JWTs (header.payload.signature, base64url JSON)
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[Redacted]'],
  // user:password@ in URLs
  [/(\/\/)[^/@\s:]*:[^/@\s]*@/g, '$1[Redacted]@'],
  // token-like query parameters (presigned blob URLs, token endpoints)
  [/([?&;](?:access_token|refresh_token|token|password|secret|client_secret|sig|signature|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token)=)[^&\s"'#]*/gi, '$1[Redacted]'],
];

/** Every pattern above needs one of these (whitespace after Bearer/Basic, `eyJ`, `//`, a query separator). */
const MAY_HOLD_SECRET = /\s|eyJ|\/\/|[?&;]/;

export function scrubText(text: string): string {
  // Most strings of a request line (route, repository, digest, status words) have none: skip the patterns.
  if (!MAY_HOLD_SECRET.test(text)) return text;
  let out = text;
  for (const [re, to] of PATTERNS) out = out.replace(re, to);
  return out;
}

/**
 * Fields whose whole value is a secret, under any capitalisation and at any depth: a header
 * (`authorization`, `cookie`), a token response, or an upstream's or Redis's `credentials`/`password`.
 */
const SECRET_KEYS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'access_token',
  'refresh_token',
  'secret',
  'password',
  'token',
  'credentials',
  'cookie',
  'set-cookie',
]);

const REDACTED = '[Redacted]';

/**
 * A copy of `value` with every string scrubbed and every secret field's value replaced by `[Redacted]`;
 * Errors become `{type, message, stack}` (what pino writes).
 */
export function scrubSecrets(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (value instanceof Error) {
    // own fields (code, errno, syscall…) and the cause survive, as in pino's error serialiser
    const own = scrubSecrets({ ...value }, depth + 1) as Record<string, unknown>;
    const cause = value.cause === undefined ? {} : { cause: scrubSecrets(value.cause, depth + 1) };
    return { type: value.name, message: scrubText(value.message), ...(value.stack ? { stack: scrubText(value.stack) } : {}), ...own, ...cause };
  }
  if (Array.isArray(value)) return value.map((v) => scrubSecrets(v, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = v !== undefined && SECRET_KEYS.has(k.toLowerCase()) ? REDACTED : scrubSecrets(v, depth + 1);
  return out;
}
