import type { UpstreamObserver } from '../upstream/types.js';

export type CacheKind = 'manifest' | 'blob' | 'tag';
export type CacheOutcome = 'hit' | 'miss' | 'coalesced' | 'stale';
/** What a response with a body was: a cache outcome for mirrored content, or `local` (pushed here). */
export type ServedOutcome = CacheOutcome | 'local';

/**
 * The one definition of a hit, for every figure wharf shows (metrics, `wharf stats`, dashboard, alert):
 * the upstream did not have to serve this request for this client's pull. `hit`, `coalesced` (joined
 * a download another client started) and `stale` (served from cache during an upstream outage) are;
 * `miss` is not, and that includes content fetched ahead for the pull being served (layer prefetch,
 * a manifest fetched for the HEAD before its GET). Hit ratio = non-miss / all cache requests.
 */
export function sparedUpstream(outcome: CacheOutcome): boolean {
  return outcome !== 'miss';
}

/** What core/ and http/ report; observability/metrics implements it with prom-client. */
export interface Metrics extends UpstreamObserver {
  cacheRequest(kind: CacheKind, outcome: CacheOutcome): void;
  /** body bytes sent to a client; `miss` bytes count as from upstream, the rest as from cache */
  bytesServed(outcome: ServedOutcome, n: number): void;
  digestMismatch(upstream: string): void;
  inflightFetches(delta: number): void;
  evicted(count: number): void;
  cacheSize(bytes: number, blobs: number): void;
  httpRequest(route: string, method: string, status: number, seconds: number): void;
  cacheWriteError(): void;
  /** a blob fetched ahead of the client (layer prefetch), or found already cached or on its way */
  prefetched(upstream: string, result: PrefetchResult): void;
  /** whether quota-consuming requests to the upstream are held now (429 Retry-After, or an exhausted quota) */
  quotaHeld(upstream: string, held: boolean): void;
  /** a HEAD sent to learn whether an exhausted quota is back */
  quotaProbe(upstream: string, result: QuotaProbeResult): void;
  /** a referrers answer for a mirrored repository: from the cache, or asked of the upstream */
  referrers(outcome: 'hit' | 'miss' | 'stale'): void;
}

export type QuotaProbeResult = 'open' | 'exhausted' | 'failed';

export type PrefetchResult = 'fetched' | 'present' | 'failed';

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

/** Metrics that record nothing: for tools and tests that do not scrape. */
export const noMetrics: Metrics = {
  cacheRequest() {},
  bytesServed() {},
  digestMismatch() {},
  inflightFetches() {},
  evicted() {},
  cacheSize() {},
  httpRequest() {},
  cacheWriteError() {},
  prefetched() {},
  quotaHeld() {},
  quotaProbe() {},
  referrers() {},
  request() {},
  bytes() {},
  rateLimit() {},
  throttled() {},
};

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
