/**
 * Bearer tokens per scope, valid until `expires_in` minus a safety margin, with single-flight fetches:
 * every caller asking for a scope while its token is being fetched waits on the same promise.
 */
export interface CachedToken {
  token: string;
  /** ms epoch after which the token is not used any more */
  expiresAt: number;
}

/** Seconds a token lives when the token endpoint omits `expires_in` (Distribution's token spec). */
export const DEFAULT_EXPIRES_IN = 60;

/** Refresh a little early so a token does not expire between fetch and use: 10 % of its life, at least 5 s. */
export function expiryOf(issuedAt: number, expiresInSeconds: number | undefined): number {
  const lifeMs = (expiresInSeconds !== undefined && expiresInSeconds > 0 ? expiresInSeconds : DEFAULT_EXPIRES_IN) * 1000;
  const margin = Math.max(lifeMs * 0.1, 5000);
  // a token shorter-lived than the margin is still used for the request it was fetched for
  return issuedAt + Math.max(lifeMs - margin, 0);
}

export class TokenCache {
  readonly #tokens = new Map<string, CachedToken>();
  readonly #inflight = new Map<string, Promise<CachedToken>>();
  /** bumped by invalidate so a fetch started before it does not repopulate the cache */
  readonly #generation = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly maxEntries = 1000,
  ) {}

  /** A valid cached token, or the result of `fetch` (shared with concurrent callers for the same scope). */
  async get(scope: string, fetch: () => Promise<CachedToken>): Promise<string> {
    const hit = this.#tokens.get(scope);
    if (hit && hit.expiresAt > this.now()) return hit.token;
    let p = this.#inflight.get(scope);
    if (!p) {
      const gen = this.#generation.get(scope) ?? 0;
      p = fetch().then(
        (t) => {
          if ((this.#generation.get(scope) ?? 0) === gen) this.#store(scope, t);
          return t;
        },
      );
      const shared = p;
      this.#inflight.set(scope, shared);
      const clear = (): void => {
        if (this.#inflight.get(scope) === shared) this.#inflight.delete(scope);
      };
      shared.then(clear, clear);
    }
    return (await p).token;
  }

  invalidate(scope: string): void {
    this.#tokens.delete(scope);
    this.#inflight.delete(scope);
    this.#generation.set(scope, (this.#generation.get(scope) ?? 0) + 1);
  }

  clear(): void {
    for (const scope of [...this.#tokens.keys(), ...this.#inflight.keys()]) this.invalidate(scope);
  }

  get size(): number {
    return this.#tokens.size;
  }

  #store(scope: string, t: CachedToken): void {
    this.#tokens.delete(scope);
    this.#tokens.set(scope, t);
    // Map keeps insertion order: the first key is the least recently stored
    while (this.#tokens.size > this.maxEntries) {
      const oldest = this.#tokens.keys().next().value;
      if (oldest === undefined) break;
      this.#tokens.delete(oldest);
    }
  }
}
