import { ErrorCode, RegistryError } from '../../oci/index.js';
import type { ExternalTokenVerifier, VerifiedToken } from './external-token.js';

export interface TokenServiceOptions {
  /** the token service's URL (config `auth.token.realm`, never built from a request) */
  realm: string;
  service: string;
  /** the verifier /v2 uses: a token the UI acts on is checked exactly as a client's would be */
  verifier: ExternalTokenVerifier;
  /** per request (default 10 s) */
  timeoutMs?: number;
}

export interface Credentials {
  username: string;
  password: string;
}

export type TokenAnswer = { kind: 'granted'; token: VerifiedToken } | { kind: 'refused' };

/** A token response is a small JSON object; anything bigger is not one. */
const MAX_RESPONSE_BYTES = 64 * 1024;
const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Asks an external token service for a token the way a Docker client does: `GET realm?service=…&scope=…`
 * (several `scope` parameters in one request, as the token spec allows) with HTTP Basic, or without
 * credentials for an anonymous token. 401/403 is a refusal; anything else that is not a verifiable token
 * (no answer, a timeout, a 5xx, a token that fails verification) is 503, never a crash and never a grant.
 */
export class TokenServiceClient {
  constructor(private readonly o: TokenServiceOptions) {}

  async token(creds: Credentials | undefined, scopes: readonly string[], signal?: AbortSignal): Promise<TokenAnswer> {
    const url = new URL(this.o.realm);
    url.searchParams.set('service', this.o.service);
    if (creds) url.searchParams.set('account', creds.username);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`, 'utf8').toString('base64')}`;
    const timeout = AbortSignal.timeout(this.o.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetch(url, { headers, redirect: 'error', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (e) {
      // The cause names the host and the socket error, never the credentials (they travel only in the header).
      throw unavailable(`the token service did not answer (${url.host}: ${reason(e)})`);
    }
    const body = await readLimited(res).catch((e: unknown) => {
      throw unavailable(`the token service's answer could not be read (${url.host}: ${reason(e)})`);
    });
    if (res.status === 401 || res.status === 403) return { kind: 'refused' };
    if (res.status !== 200) throw unavailable(`the token service answered ${res.status} (${url.host})`);
    const raw = tokenOf(body);
    const token = raw === undefined ? undefined : await this.o.verifier.verifyToken(raw);
    // A token the registry would refuse grants nothing here either: the configuration does not match the service.
    if (!token) throw unavailable('the token service\'s token does not verify (check auth.token.issuer, service and rootcertbundle/jwks)');
    return { kind: 'granted', token };
  }
}

function unavailable(message: string): RegistryError {
  return new RegistryError(ErrorCode.UNAVAILABLE, message, { headers: { 'Retry-After': '5' } });
}

function reason(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  if (cause instanceof Error && (cause.name === 'TimeoutError' || cause.name === 'AbortError')) return 'timed out';
  const code = (cause as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : cause instanceof Error ? cause.message : 'failed';
}

async function readLimited(res: Response): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Uint8Array>) {
    n += c.length;
    if (n > MAX_RESPONSE_BYTES) throw new Error('answer too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `token` or `access_token` (Docker Hub sends both; some services only one). */
function tokenOf(body: string): string | undefined {
  try {
    const v = JSON.parse(body) as { token?: unknown; access_token?: unknown } | null;
    const t = v?.token ?? v?.access_token;
    return typeof t === 'string' && t !== '' ? t : undefined;
  } catch {
    return undefined;
  }
}
