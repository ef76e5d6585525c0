import { statfs } from 'node:fs/promises';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { sparedUpstream, type CacheKind, type CacheOutcome, type Metrics } from './types.js';

export interface MetricsOptions {
  prefix?: 'wharf_';
  /** prom-client's process/nodejs metrics (prefixed); default true */
  collectDefault?: boolean;
  /** When set, free/total bytes of the filesystem holding it are read at scrape time (statfs). */
  dataDir?: string;
  /** cache.maxSize; when set, exported as wharf_cache_max_bytes so alerts can compare the cache size with it */
  cacheMaxBytes?: number;
  /** cluster mode: whether the metadata store is degraded (Redis outage), read at scrape time */
  metadataDegraded?: () => boolean;
}

/** Webhook delivery, per configured endpoint (src/notify/ reports through this shape). */
export interface NotifyMetrics {
  notifyDelivered(endpoint: string, events: number): void;
  notifyFailed(endpoint: string, status: number | 'error'): void;
  notifyDropped(endpoint: string, events: number): void;
  notifyPending(endpoint: string, count: number, oldestAgeSeconds: number): void;
}

export interface PromMetrics extends Metrics, NotifyMetrics {
  readonly registry: Registry;
  /** An object-storage request (storage.s3), by operation and HTTP status (error = no HTTP answer). */
  storageRequest(op: string, status: string, seconds: number): void;
  render(): Promise<{ contentType: string; body: string }>;
}

const CACHE_KINDS: readonly CacheKind[] = ['manifest', 'blob', 'tag'];
const CACHE_OUTCOMES: readonly CacheOutcome[] = ['hit', 'miss', 'coalesced', 'stale'];
const BYTE_SOURCES = ['cache', 'upstream'] as const;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Registry traffic spans sub-millisecond cache hits to multi-minute layer downloads. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

/** Every metric wharf itself defines (the prom-client defaults come on top, as wharf_process_* / wharf_nodejs_*). */
export const metricNames = [
  'wharf_http_requests_total',
  'wharf_http_request_duration_seconds',
  'wharf_cache_requests_total',
  'wharf_bytes_served_total',
  'wharf_bytes_spared_total',
  'wharf_upstream_requests_total',
  'wharf_upstream_request_duration_seconds',
  'wharf_upstream_bytes_total',
  'wharf_upstream_digest_mismatch_total',
  'wharf_upstream_ratelimit_limit',
  'wharf_upstream_ratelimit_remaining',
  'wharf_upstream_throttled_total',
  'wharf_cache_size_bytes',
  'wharf_cache_blobs',
  'wharf_cache_max_bytes',
  'wharf_cache_evictions_total',
  'wharf_inflight_fetches',
  'wharf_cache_write_errors_total',
  'wharf_data_free_bytes',
  'wharf_data_size_bytes',
  'wharf_metadata_degraded',
  'wharf_notify_pending_events',
  'wharf_notify_oldest_pending_seconds',
  'wharf_notify_delivered_total',
  'wharf_notify_failed_total',
  'wharf_notify_dropped_total',
  'wharf_storage_requests_total',
  'wharf_storage_request_duration_seconds',
] as const;
export type MetricName = (typeof metricNames)[number];

/**
 * Label values must stay a small, fixed set: a route id or an upstream's configured name, never a
 * repository, tag or URL path. Anything that looks like one collapses into a single bucket.
 */
const BOUNDED = /^[A-Za-z0-9_.:-]{1,64}$/;
function bounded(value: string, fallback: string): string {
  return BOUNDED.test(value) ? value : fallback;
}
function method(m: string): string {
  const up = m.toUpperCase();
  return METHODS.has(up) ? up : 'OTHER';
}
function status(s: number | 'error'): string {
  if (s === 'error') return 'error';
  return Number.isInteger(s) && s >= 100 && s <= 599 ? String(s) : 'error';
}

export function createMetrics(opts: MetricsOptions = {}): PromMetrics {
  const prefix = opts.prefix ?? 'wharf_';
  const registry = new Registry();
  const registers = [registry];
  const name = (n: string) => `${prefix}${n}`;

  if (opts.collectDefault ?? true) collectDefaultMetrics({ register: registry, prefix });

  const httpRequests = new Counter({
    name: name('http_requests_total'),
    help: 'Requests answered, by route id, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: name('http_request_duration_seconds'),
    help: 'Time to answer a request (until the response ended), by route id and method',
    labelNames: ['route', 'method'] as const,
    buckets: [...DURATION_BUCKETS],
    registers,
  });
  const cacheRequests = new Counter({
    name: name('cache_requests_total'),
    help: 'Cache lookups by kind and outcome. miss = the upstream served it for this pull (content prefetched for the pull included); hit, coalesced (joined a download another client started) and stale (served during an upstream outage) spared the upstream. Hit ratio = sum without miss / sum',
    labelNames: ['kind', 'outcome'] as const,
    registers,
  });
  const bytesServed = new Counter({
    name: name('bytes_served_total'),
    help: 'Body bytes sent to clients: source=upstream for misses (the upstream sent them for this pull, prefetched content included), cache for everything else',
    labelNames: ['source'] as const,
    registers,
  });
  const bytesSpared = new Counter({
    name: name('bytes_spared_total'),
    help: 'Body bytes of mirrored content sent to clients that the upstream did not have to send for their pull (hit, coalesced, stale): upstream bandwidth saved',
    registers,
  });
  const upstreamRequests = new Counter({
    name: name('upstream_requests_total'),
    help: 'Requests sent to upstream registries, by upstream, method and status (error = no HTTP answer)',
    labelNames: ['upstream', 'method', 'status'] as const,
    registers,
  });
  const upstreamDuration = new Histogram({
    name: name('upstream_request_duration_seconds'),
    help: 'Upstream request time, by upstream',
    labelNames: ['upstream'] as const,
    buckets: [...DURATION_BUCKETS],
    registers,
  });
  const storageRequests = new Counter({
    name: name('storage_requests_total'),
    help: 'Object-storage requests (storage.s3), by operation and status (error = no HTTP answer)',
    labelNames: ['op', 'status'] as const,
    registers,
  });
  const storageDuration = new Histogram({
    name: name('storage_request_duration_seconds'),
    help: 'Object-storage request time, by operation',
    labelNames: ['op'] as const,
    buckets: [...DURATION_BUCKETS],
    registers,
  });
  const upstreamBytes = new Counter({
    name: name('upstream_bytes_total'),
    help: 'Body bytes received from upstream registries',
    labelNames: ['upstream'] as const,
    registers,
  });
  const prefetched = new Counter({
    name: name('prefetch_blobs_total'),
    help: 'Blobs of newly fetched manifests fetched ahead of the client (fetched), found cached or already on their way (present), or not fetched (failed)',
    labelNames: ['upstream', 'result'] as const,
    registers,
  });
  const digestMismatch = new Counter({
    name: name('upstream_digest_mismatch_total'),
    help: 'Upstream content whose digest or size did not match what was asked for (discarded)',
    labelNames: ['upstream'] as const,
    registers,
  });
  const rateLimitLimit = new Gauge({
    name: name('upstream_ratelimit_limit'),
    help: 'Pull limit of the current window, from the upstream ratelimit-limit header',
    labelNames: ['upstream'] as const,
    registers,
  });
  const rateLimitRemaining = new Gauge({
    name: name('upstream_ratelimit_remaining'),
    help: 'Pulls left in the current window, from the upstream ratelimit-remaining header',
    labelNames: ['upstream'] as const,
    registers,
  });
  const quotaHeld = new Gauge({
    name: name('upstream_quota_held'),
    help: '1 while quota-consuming requests (manifest GETs) to the upstream are held back (after a 429 until Retry-After, or while its quota is exhausted); the whole cluster shares one hold',
    labelNames: ['upstream'] as const,
    registers,
  });
  const quotaProbes = new Counter({
    name: name('upstream_quota_probes_total'),
    help: 'HEAD requests sent to learn whether an exhausted quota is back, by result (open, exhausted, failed)',
    labelNames: ['upstream', 'result'] as const,
    registers,
  });
  const referrerRequests = new Counter({
    name: name('referrers_requests_total'),
    help: 'Referrers answers for mirrored repositories: hit (cached list within referrersFreshness), miss (asked the upstream), stale (upstream unavailable, last list served)',
    labelNames: ['outcome'] as const,
    registers,
  });
  const throttled = new Counter({
    name: name('upstream_throttled_total'),
    help: 'Times an upstream told wharf to slow down (429)',
    labelNames: ['upstream'] as const,
    registers,
  });
  const cacheSize = new Gauge({
    name: name('cache_size_bytes'),
    help: 'Bytes of content in the blob store',
    registers,
  });
  const cacheBlobs = new Gauge({
    name: name('cache_blobs'),
    help: 'Blobs in the blob store',
    registers,
  });
  const evictions = new Counter({
    name: name('cache_evictions_total'),
    help: 'Blobs evicted to keep the cache under its size limit',
    registers,
  });
  const inflight = new Gauge({
    name: name('inflight_fetches'),
    help: 'Upstream fetches in progress (shared by every waiting client)',
    registers,
  });
  const writeErrors = new Counter({
    name: name('cache_write_errors_total'),
    help: 'Failed writes into the cache (the client was still served from upstream)',
    registers,
  });

  const notifyPending = new Gauge({ name: name('notify_pending_events'), help: 'Events queued and not yet delivered, per notification endpoint', labelNames: ['endpoint'], registers });
  const notifyOldest = new Gauge({ name: name('notify_oldest_pending_seconds'), help: 'Age of the oldest undelivered event, per notification endpoint', labelNames: ['endpoint'], registers });
  const notifyDelivered = new Counter({ name: name('notify_delivered_total'), help: 'Events delivered (answered 2xx/3xx), per notification endpoint', labelNames: ['endpoint'], registers });
  const notifyFailed = new Counter({ name: name('notify_failed_total'), help: 'Failed delivery attempts by answer status (error: no answer)', labelNames: ['endpoint', 'status'], registers });
  const notifyDropped = new Counter({ name: name('notify_dropped_total'), help: 'Events dropped because an endpoint had maxPending undelivered', labelNames: ['endpoint'], registers });

  // Unbounded caches have no limit to compare with; a 0 here would read as "always full".
  if (opts.cacheMaxBytes !== undefined && opts.cacheMaxBytes > 0) {
    new Gauge({
      name: name('cache_max_bytes'),
      help: 'Configured cache.maxSize',
      registers,
    }).set(opts.cacheMaxBytes);
  }
  if (opts.dataDir !== undefined) registerDiskGauges(opts.dataDir, name, registry);
  const degraded = opts.metadataDegraded;
  if (degraded) {
    new Gauge({
      name: name('metadata_degraded'),
      help: '1 while Redis does not answer: last known tags and links are served (up to redis.outageGrace), writes refused',
      registers,
      collect() {
        this.set(degraded() ? 1 : 0);
      },
    });
  }

  // rate() needs a series to exist before its first increment; a dashboard should not start empty.
  for (const kind of CACHE_KINDS) for (const outcome of CACHE_OUTCOMES) cacheRequests.labels(kind, outcome).inc(0);
  for (const source of BYTE_SOURCES) bytesServed.labels(source).inc(0);

  return {
    registry,
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    cacheRequest(kind, outcome) {
      cacheRequests.labels(kind, outcome).inc();
    },
    bytesServed(outcome, n) {
      if (n <= 0) return;
      bytesServed.labels(outcome === 'miss' ? 'upstream' : 'cache').inc(n);
      if (outcome !== 'local' && sparedUpstream(outcome)) bytesSpared.inc(n);
    },
    digestMismatch(upstream) {
      digestMismatch.labels(bounded(upstream, 'other')).inc();
    },
    inflightFetches(delta) {
      inflight.inc(delta);
    },
    evicted(count) {
      if (count > 0) evictions.inc(count);
    },
    cacheSize(bytes, blobs) {
      cacheSize.set(bytes);
      cacheBlobs.set(blobs);
    },
    httpRequest(route, m, s, seconds) {
      const r = bounded(route, 'unmatched');
      const mm = method(m);
      httpRequests.labels(r, mm, status(s)).inc();
      httpDuration.labels(r, mm).observe(Math.max(0, seconds));
    },
    cacheWriteError() {
      writeErrors.inc();
    },
    prefetched(upstream, result) {
      prefetched.labels(bounded(upstream, 'other'), result).inc();
    },
    request(upstream, m, s, seconds) {
      const u = bounded(upstream, 'other');
      upstreamRequests.labels(u, method(m), status(s)).inc();
      upstreamDuration.labels(u).observe(Math.max(0, seconds));
    },
    storageRequest(op, s, seconds) {
      const o = bounded(op, 'other');
      storageRequests.labels(o, /^\d{3}$/.test(s) ? s : 'error').inc();
      storageDuration.labels(o).observe(Math.max(0, seconds));
    },
    bytes(upstream, n) {
      if (n > 0) upstreamBytes.labels(bounded(upstream, 'other')).inc(n);
    },
    rateLimit(upstream, reading) {
      const u = bounded(upstream, 'other');
      if (reading.limit !== undefined) rateLimitLimit.labels(u).set(reading.limit);
      if (reading.remaining !== undefined) rateLimitRemaining.labels(u).set(reading.remaining);
    },
    quotaHeld(upstream, held) {
      quotaHeld.labels(bounded(upstream, 'other')).set(held ? 1 : 0);
    },
    quotaProbe(upstream, result) {
      quotaProbes.labels(bounded(upstream, 'other'), result).inc();
    },
    referrers(outcome) {
      referrerRequests.labels(outcome).inc();
    },
    throttled(upstream) {
      throttled.labels(bounded(upstream, 'other')).inc();
    },
    notifyDelivered(endpoint, events) {
      notifyDelivered.labels(bounded(endpoint, 'other')).inc(events);
    },
    notifyFailed(endpoint, s) {
      notifyFailed.labels(bounded(endpoint, 'other'), status(s)).inc();
    },
    notifyDropped(endpoint, events) {
      notifyDropped.labels(bounded(endpoint, 'other')).inc(events);
    },
    notifyPending(endpoint, count, oldest) {
      const e = bounded(endpoint, 'other');
      notifyPending.labels(e).set(count);
      notifyOldest.labels(e).set(oldest);
    },
  };
}

/** Read at scrape time so the numbers are as fresh as the scrape, with no timer to stop. */
function registerDiskGauges(dataDir: string, name: (n: string) => string, registry: Registry): void {
  const read = async () => {
    const s = await statfs(dataDir);
    return { free: s.bavail * s.bsize, size: s.blocks * s.bsize };
  };
  new Gauge({
    name: name('data_free_bytes'),
    help: 'Bytes available to wharf on the filesystem holding the data directory',
    registers: [registry],
    async collect() {
      try {
        this.set((await read()).free);
      } catch {
        this.set(Number.NaN); // unknown, not 0: a failed reading must not look like a full disk
      }
    },
  });
  new Gauge({
    name: name('data_size_bytes'),
    help: 'Total bytes of the filesystem holding the data directory',
    registers: [registry],
    async collect() {
      try {
        this.set((await read()).size);
      } catch {
        this.set(Number.NaN);
      }
    },
  });
}
