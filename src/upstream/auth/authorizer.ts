import { ErrorCode, RegistryError } from '../../oci/index.js';
import type { Authorizer } from '../types.js';
import { challengeKey, parseChallenges, pickChallenge, type Challenge } from './challenge.js';
import type { Credentials } from './credentials.js';
import { expiryOf, TokenCache, type CachedToken } from './token-cache.js';

/** The one HTTP round trip the authorizer needs; client.ts provides it over the upstream's dispatcher. */
export interface AuthTransport {
  (req: { url: string; headers: Record<string, string>; signal: AbortSignal }): Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: Buffer;
  }>;
}

export interface AuthorizerOptions {
  upstream: string;
  /** the upstream's base URL (`https://registry-1.docker.io`) */
  baseUrl: string;
  credentials?: Credentials;
  transport: AuthTransport;
  now?: () => number;
  /** how long one ping or token request may take (ms) */
  timeout?: number;
  /** rejects a realm wharf must not contact; called before any token request is sent */
  checkRealm?: (realm: URL) => Promise<void>;
}

/** What the ping told us: the challenge to answer, or none when `/v2/` is open. */
type Discovery = { challenge?: Challenge };

export interface UpstreamAuthorizer extends Authorizer {
  /**
   * `challenge` is the WWW-Authenticate of the 401 that caused the invalidation: when it names another
   * scheme/realm/service than the one we answered, the next header() pings `/v2/` again.
   */
  invalidate(scope: string, challenge?: string | string[]): void;
  /** Scheme currently in use, for logs: 'bearer' | 'basic' | 'anonymous' | undefined (not discovered yet). */
  scheme(): string | undefined;
}

export function createAuthorizer(opts: AuthorizerOptions): UpstreamAuthorizer {
  return new ChallengeAuthorizer(opts);
}

class ChallengeAuthorizer implements UpstreamAuthorizer {
  readonly #opts: AuthorizerOptions;
  readonly #now: () => number;
  readonly #tokens: TokenCache;
  #discovery: Promise<Discovery> | undefined;
  #discovered: Discovery | undefined;

  constructor(opts: AuthorizerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#tokens = new TokenCache(this.#now);
  }

  scheme(): string | undefined {
    if (!this.#discovered) return undefined;
    return this.#discovered.challenge?.scheme ?? 'anonymous';
  }

  async header(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const { challenge } = await abortable(this.#discover(), signal);
    const creds = this.#opts.credentials;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') return creds?.basicHeader();
    const realm = challenge.params['realm'];
    if (!realm) {
      // a Bearer challenge without a token endpoint: the configured token is the bearer itself
      return creds?.kind === 'token' ? `Bearer ${creds.password}` : undefined;
    }
    const token = await abortable(
      this.#tokens.get(scope, () => this.#fetchToken(realm, challenge.params['service'], scope)),
      signal,
    );
    return `Bearer ${token}`;
  }

  invalidate(scope: string, challenge?: string | string[]): void {
    this.#tokens.invalidate(scope);
    if (challenge === undefined || !this.#discovered) return;
    const seen = pickChallenge(parseChallenges(challenge));
    if (challengeKey(seen) !== challengeKey(this.#discovered.challenge)) {
      this.#discovery = undefined;
      this.#discovered = undefined;
      this.#tokens.clear();
    }
  }

  #discover(): Promise<Discovery> {
    if (!this.#discovery) {
      const p = this.#ping().then((d) => {
        if (this.#discovery === p) this.#discovered = d;
        return d;
      });
      // a failed ping is not remembered: the next request tries again
      p.catch(() => {
        if (this.#discovery === p) this.#discovery = undefined;
      });
      this.#discovery = p;
    }
    return this.#discovery;
  }

  async #ping(): Promise<Discovery> {
    const url = new URL('/v2/', this.#opts.baseUrl).toString();
    const res = await this.#send(url, {}, 'ping');
    if (res.status === 401) {
      const challenge = pickChallenge(parseChallenges(res.headers['www-authenticate']));
      // 401 with an unknown scheme: fall back to Basic when we have credentials, so they are at least tried
      if (!challenge) return this.#opts.credentials ? { challenge: { scheme: 'basic', params: {} } } : {};
      return { challenge };
    }
    if (res.status >= 500) {
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.#opts.upstream}: /v2/ answered ${res.status}`);
    }
    // 200, or a registry that does not implement /v2/ (404): nothing to answer
    return {};
  }

  async #fetchToken(realm: string, service: string | undefined, scope: string): Promise<CachedToken> {
    const name = this.#opts.upstream;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${name}: invalid token realm`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${name}: token realm must be http(s)`);
    }
    await this.#opts.checkRealm?.(url);
    if (service !== undefined) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    const creds = this.#opts.credentials;
    if (creds) {
      // never downgrade: an https upstream's secret does not travel to a plain-http realm
      if (url.protocol === 'http:' && new URL(this.#opts.baseUrl).protocol === 'https:') {
        throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${name}: refusing to send credentials to a plain-http token realm`);
      }
      headers['authorization'] = creds.basicHeader();
    }
    const issuedAt = this.#now();
    const res = await this.#send(url.toString(), headers, 'token');
    if (res.status === 401 || res.status === 403) {
      throw new RegistryError(ErrorCode.UNAUTHORIZED, `upstream ${name}: token endpoint refused ${creds ? 'the configured credentials' : 'anonymous access'} (${res.status})`);
    }
    if (res.status !== 200) {
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${name}: token endpoint answered ${res.status}`);
    }
    let body: unknown;
    try {
      body = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${name}: token endpoint sent invalid JSON`);
    }
    const b = (body ?? {}) as Record<string, unknown>;
    const token = typeof b['token'] === 'string' && b['token'] !== '' ? b['token'] : b['access_token'];
    if (typeof token !== 'string' || token === '') {
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${name}: token endpoint sent no token`);
    }
    const expiresIn = typeof b['expires_in'] === 'number' ? b['expires_in'] : undefined;
    return { token, expiresAt: expiryOf(issuedAt, expiresIn) };
  }

  async #send(url: string, headers: Record<string, string>, what: string) {
    // Shared fetches (ping, token) are not tied to any one caller's signal: a caller that gives up must
    // not fail the others waiting on the same fetch.
    const signal = AbortSignal.timeout(this.#opts.timeout ?? 30_000);
    try {
      return await this.#opts.transport({ url, headers, signal });
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.#opts.upstream}: ${what} request failed: ${errorText(e)}`, { cause: e });
    }
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ?? e.message;
  return String(e);
}

/** Waits for `p` unless `signal` aborts first; the shared work behind `p` keeps going. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
