import type { UpstreamConfig } from '../../src/config/types.js';

/** A complete UpstreamConfig for tests that build an upstream client directly (config/ fills these in for wharf). */
export function upstreamConfig(url: string, over: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return {
    name: 'test-upstream',
    url,
    default: false,
    aliases: [],
    libraryPrefix: false,
    tagFreshness: 60_000,
    notFoundTtl: 60_000,
    quotaProbeInterval: 30_000,
    maxConnections: 4,
    maxConcurrentFetches: 4,
    prefetch: 0,
    timeouts: { connect: 5_000, headers: 10_000, body: 10_000 },
    tls: { insecureSkipVerify: false },
    redirectHosts: [],
    redirectPublicHttps: false,
    tokenRealmHosts: [],
    ...over,
  };
}
