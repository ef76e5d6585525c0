import type { Registry } from 'prom-client';
import { sparedUpstream, type CacheOutcome } from './types.js';

/** Cache traffic since start, read back from this process's metrics (the same counters Prometheus scrapes). */
export interface Traffic {
  /** lookups the upstream did not have to serve for this pull (sparedUpstream: the one hit-ratio definition) */
  hits: number;
  requests: number;
  bytesFromCache: number;
  bytesFromUpstream: number;
  /** mirrored bytes the upstream did not have to send (wharf_bytes_spared_total): the bandwidth saved */
  bytesSpared: number;
  inflightFetches: number;
}

type Sample = { value: number; labels: Record<string, string | number | undefined> };

async function samples(registry: Registry, name: string): Promise<Sample[]> {
  const m = registry.getSingleMetric(name);
  return m ? ((await m.get()).values as Sample[]) : [];
}

export async function readTraffic(registry: Registry, prefix = 'wharf_'): Promise<Traffic> {
  const t: Traffic = { hits: 0, requests: 0, bytesFromCache: 0, bytesFromUpstream: 0, bytesSpared: 0, inflightFetches: 0 };
  for (const s of await samples(registry, `${prefix}cache_requests_total`)) {
    t.requests += s.value;
    if (sparedUpstream(String(s.labels.outcome) as CacheOutcome)) t.hits += s.value;
  }
  for (const s of await samples(registry, `${prefix}bytes_served_total`)) {
    if (s.labels.source === 'cache') t.bytesFromCache += s.value;
    else if (s.labels.source === 'upstream') t.bytesFromUpstream += s.value;
  }
  for (const s of await samples(registry, `${prefix}bytes_spared_total`)) t.bytesSpared += s.value;
  for (const s of await samples(registry, `${prefix}inflight_fetches`)) t.inflightFetches += s.value;
  return t;
}
