import type { WharfConfig } from './config/types.js';
import { AccessTracker } from './core/access-tracker.js';
import { AdminService } from './core/admin-service.js';
import { Evictor } from './core/eviction.js';
import type { TempSweeper } from './core/gc.js';
import { removalEvents } from './core/events.js';
import type { EventSink, Namespaces } from './core/types.js';
import type { Digest } from './oci/index.js';
import type { Logger, Metrics } from './observability/types.js';
import { FETCH_LEASE_MS } from './store/index.js';
import type { BlobStore, MetadataStore } from './store/types.js';
import type { Upstream } from './upstream/types.js';

export interface LifecycleDeps {
  config: WharfConfig;
  store: BlobStore & TempSweeper;
  meta: MetadataStore;
  logger: Logger;
  metrics: Metrics;
  /** Being fetched or written right now; usually set later with setBusyCheck (the registry needs the tracker first). */
  isBusy?: (digest: Digest) => boolean;
  now?: () => number;
  /** how often access times are written (default 10 s) */
  accessFlushMs?: number;
  /** cluster mode: a lease only one replica holds at a time (eviction runs there) */
  lease?: (name: string, ttlMs: number) => Promise<{ release(): Promise<void> } | undefined>;
}

export interface Lifecycle {
  tracker: AccessTracker;
  evictor: Evictor;
  isBusy: (digest: Digest) => boolean;
  /** Where busy digests come from (blob-service's in-flight fetches), once the registry exists. */
  setBusyCheck(check: (digest: Digest) => boolean): void;
  /** Where `evict` events go (the webhooks), with the names the repositories go by. */
  setEvents(events: EventSink | undefined, namespaces: Namespaces): void;
  /** The admin API's service over this lifecycle, with the credentials that guard it (config.admin); `purge` events go to `events`. */
  adminRoutes(deps: { namespaces: Namespaces; upstreams: ReadonlyMap<string, Pick<Upstream, 'name' | 'rateLimit'>>; events?: EventSink }): {
    admin: AdminService;
    credentials?: { username: string; password: string };
  };
  /** what the start-up sweep removed from tmp/ */
  swept: { removed: string[]; bytes: number };
  /** Stops the eviction loop (waiting for a pass in progress) and writes pending access times. */
  stop(): Promise<void>;
}

/** an eviction pass's lease (renewed while held): one replica evicts at a time */
const EVICTION_LEASE_MS = 60_000;

/** gc spares blobs and temp files younger than this (a push links its blobs right after commit). */
const GC_GRACE_MS = 5 * 60 * 1000;

/**
 * Background cache lifecycle: clears crash leftovers from tmp/ first, then runs the access tracker and the
 * eviction loop. Nothing here blocks a request.
 */
export async function startLifecycle(deps: LifecycleDeps): Promise<Lifecycle> {
  const { config, store, meta, logger, metrics } = deps;
  const now = deps.now ?? Date.now;
  let busyCheck = deps.isBusy;
  const isBusy = (d: Digest) => busyCheck?.(d) ?? false;
  let evictEvents: { sink: EventSink; namespaces: Namespaces } | undefined;

  const swept = await sweepLeftovers(deps);
  if (swept.removed.length > 0) logger.info({ files: swept.removed.length, bytes: swept.bytes }, 'removed leftover temp files from an earlier run');

  const tracker = new AccessTracker(meta, {
    flushIntervalMs: deps.accessFlushMs ?? 10_000,
    now,
    onError: (err) => logger.warn({ err: (err as Error).message }, 'access times not written; retrying'),
  });
  const freshness = config.upstreams.map((u) => ({ prefix: `${u.name}/`, ms: u.tagFreshness })).sort((a, b) => b.prefix.length - a.prefix.length);
  const evictor = new Evictor({
    store,
    meta,
    now,
    logger,
    metrics,
    maxSize: config.cache.maxSize ?? Infinity,
    highWatermark: config.cache.highWatermark,
    lowWatermark: config.cache.lowWatermark,
    // Repository keys are `<upstream name>/<path>`; no match is a plain registry's repo (nothing to refresh).
    freshnessOf: (key) => freshness.find((f) => key.startsWith(f.prefix))?.ms ?? 0,
    isBusy,
    recentAccess: (d) => tracker.peek(d),
    ...(deps.lease ? { lease: () => deps.lease!('eviction', EVICTION_LEASE_MS) } : {}),
    // Eviction answers no request: its events are queued in the background, a failure logged.
    onRemoved: (removed) => {
      const events = evictEvents && removalEvents(evictEvents.sink, evictEvents.namespaces, 'evict', removed);
      if (events && events.length > 0) evictEvents!.sink.emit(events).catch((e: unknown) => logger.error({ err: (e as Error).message }, 'notifications: could not queue evict events'));
    },
  });
  evictor.start(config.cache.evictionInterval);
  const adminService = (namespaces: Namespaces, upstreams: ReadonlyMap<string, Pick<Upstream, 'name' | 'rateLimit'>>, events: EventSink | undefined) =>
    new AdminService({
      store,
      meta,
      namespaces,
      ...(events ? { events } : {}),
      upstreams,
      evictor,
      cache: { ...(config.cache.maxSize !== undefined ? { maxSize: config.cache.maxSize } : {}), highWatermark: config.cache.highWatermark, lowWatermark: config.cache.lowWatermark },
      uploadExpiryMs: config.uploads.expiry,
      gcGraceMs: GC_GRACE_MS,
      isBusy,
      recentAccess: (d) => tracker.peek(d),
      now,
      logger,
    });
  const { username, password } = config.admin;
  let stopped: Promise<void> | undefined;
  return {
    tracker,
    evictor,
    isBusy,
    setBusyCheck(check) {
      busyCheck = check;
    },
    setEvents(sink, namespaces) {
      evictEvents = sink && { sink, namespaces };
    },
    adminRoutes({ namespaces, upstreams, events }) {
      const admin = adminService(namespaces, upstreams, events);
      return username !== undefined && password !== undefined ? { admin, credentials: { username, password } } : { admin };
    },
    swept,
    stop() {
      stopped ??= (async () => {
        await evictor.stop();
        await tracker.close().catch((e: unknown) => logger.warn({ err: (e as Error).message }, 'access times not written at shutdown'));
      })();
      return stopped;
    },
  };
}

/**
 * Temp files no upload session owns are what a killed process left behind. Upload sessions stay resumable
 * until they expire, so their files are kept. With Redis (replicas sharing the volume) another process may be
 * writing a temp file right now, so only old ones go.
 */
async function sweepLeftovers(deps: LifecycleDeps): Promise<{ removed: string[]; bytes: number }> {
  if (!deps.store.sweepTemp) return { removed: [], bytes: 0 };
  const owned = new Set<string>();
  try {
    for await (const u of deps.meta.listUploads()) owned.add(u.writerId);
  } catch (e) {
    // Redis down at start: which temp files are live upload sessions is unknown, so none is removed.
    deps.logger.warn({ err: (e as Error).message }, 'upload sessions unreadable: leftover temp files kept until a later start');
    return { removed: [], bytes: 0 };
  }
  // On a shared store a temp file may be another replica's fetch: one untouched for a lease's lifetime is a leftover.
  const olderThan = deps.meta.kind === 'embedded' ? 0 : FETCH_LEASE_MS;
  try {
    return await deps.store.sweepTemp(olderThan, (id) => owned.has(id));
  } catch (e) {
    deps.logger.warn({ err: (e as Error).message }, 'could not sweep leftover temp files');
    return { removed: [], bytes: 0 };
  }
}
