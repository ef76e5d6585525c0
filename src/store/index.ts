import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { ErrorCode, RegistryError, isRegistryError } from '../oci/index.js';
import { join } from 'node:path';
import { EmbeddedMetadataStore } from './meta/embedded.js';
import { MemoMetadataStore, type MemoOptions } from './meta/memo.js';
import { RedisMetadataStore } from './meta/redis.js';
import { DeadlineCluster, DeadlineRedis } from './meta/redis-deadline.js';
import type { MetadataStore } from './types.js';

export type * from './types.js';
export { FsBlobStore, isWriterId, WRITER_ID_RE, type FsBlobStoreOptions } from './blob/fs-blob-store.js';
export { S3BlobStore, MIN_PART_SIZE, type S3BlobStoreOptions } from './blob/s3-blob-store.js';
export { BucketInUseError } from './blob/s3-owner.js';
export type { S3Options, StorageObserver } from './blob/s3-client.js';
export { nodeBlobFs, type BlobFs, type BlobFileHandle, type BlobStatResult } from './blob/blob-fs.js';
export { EmbeddedMetadataStore, type EmbeddedOptions, type RecoveryInfo } from './meta/embedded.js';
export { LockHeldError } from './meta/lock.js';
export { RedisMetadataStore, type RedisStoreOptions } from './meta/redis.js';
export { MemoMetadataStore, memoKeys, type MemoOptions, type KnownEntry } from './meta/memo.js';
export { readSnapshot, startSnapshots, writeSnapshot, type SnapshotWriter } from './meta/snapshot.js';
export { RedisCoordinator, FETCH_LEASE_MS, type RedisCoordinatorOptions, type ReplicaRef, type HeldLease, type BlobClaim } from './meta/redis-cluster.js';
export { startInvalidation, type InvalidationBus, type InvalidationOptions } from './meta/invalidation.js';

/** How to reach Redis (the shape of config `redis`, kept here so store/ does not import config/). */
export interface RedisConnectOptions {
  url: string;
  keyPrefix: string;
  password?: string;
  tls?: { caFile?: string; insecureSkipVerify?: boolean; servername?: string };
  sentinels?: Array<{ host: string; port: number }>;
  sentinelName?: string;
  cluster?: Array<{ host: string; port: number }>;
}

export interface OpenMetadataStoreOptions {
  dataDir: string;
  redis?: RedisConnectOptions;
  memo?: MemoOptions;
  /** connection trouble after start-up (ioredis reports every failed reconnect); default: ignored */
  onRedisError?: (err: Error) => void;
  /**
   * The Redis client to use, connected by the caller (cluster start-up connects in the background: the store
   * then answers UNAVAILABLE until it has). Default: one made from `redis` and connected here, failing fast.
   */
  redisClient?: Redis | Cluster;
}

export { REDIS_COMMAND_TIMEOUT_MS } from './meta/redis-deadline.js';

/**
 * An ioredis client (standalone, Sentinel or Cluster) from the config, not yet connected (`lazyConnect`).
 * It never queues commands while disconnected, gives up on a command unanswered for REDIS_COMMAND_TIMEOUT_MS
 * (its own deadline, not ioredis's `commandTimeout`: see redis-deadline.ts), and reconnects forever with a
 * capped backoff, so an outage fails requests fast and ends without a restart.
 */
export function createRedisClient(cfg: RedisConnectOptions): Redis | Cluster {
  const u = new URL(cfg.url);
  const tls = tlsOptions(cfg, u);
  const common: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: cfg.password ?? (u.password ? decodeURIComponent(u.password) : undefined),
    db: /^\/\d+$/.test(u.pathname) ? Number(u.pathname.slice(1)) : undefined,
    ...(tls ? { tls } : {}),
  };
  if (cfg.cluster && cfg.cluster.length > 0) {
    const opts: ClusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRedirections: 4,
      clusterRetryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
      redisOptions: { ...common, lazyConnect: undefined, db: undefined },
    };
    return new DeadlineCluster(cfg.cluster, opts);
  }
  if (cfg.sentinels && cfg.sentinels.length > 0) {
    return new DeadlineRedis({
      ...common,
      sentinels: cfg.sentinels,
      name: cfg.sentinelName ?? 'mymaster',
      sentinelPassword: common.password,
      ...(tls ? { enableTLSForSentinelMode: true } : {}),
    });
  }
  return new DeadlineRedis({ ...common, host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379 });
}

function tlsOptions(cfg: RedisConnectOptions, u: URL): ConnectionOptions | undefined {
  if (u.protocol !== 'rediss:' && !cfg.tls) return undefined;
  const t = cfg.tls ?? {};
  return {
    ...(t.caFile ? { ca: readFileSync(t.caFile) } : {}),
    rejectUnauthorized: !t.insecureSkipVerify,
    servername: t.servername ?? u.hostname,
  };
}

/** Connects a lazy client and checks it answers; on failure names the URL without its password. */
export async function connectRedis(client: Redis | Cluster, cfg: RedisConnectOptions): Promise<void> {
  // The root cause (ECONNREFUSED, WRONGPASS) comes as an 'error' event; connect() then only says the connection closed.
  let cause: Error | undefined;
  const onError = (e: Error): void => void (cause = e);
  client.on('error', onError);
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    client.disconnect();
    throw new Error(`metadata store: cannot reach redis at ${redactUrl(cfg.url)} (${(cause ?? (e as Error)).message})`, { cause: e });
  } finally {
    client.off('error', onError);
  }
}

/**
 * Runs `attempt` until it succeeds, waiting between failures (from `firstMs`, doubling, capped at `maxMs`);
 * rejects only when `signal` aborts. Each failure is reported to `onFailure` (the first one included).
 */
export async function retryUntil<T>(
  attempt: () => Promise<T>,
  opts: {
    signal: AbortSignal;
    onFailure?: (err: Error, attempt: number) => void;
    /** failures not worth retrying (a wrong password): rethrown at once */
    fatal?: (err: Error) => boolean;
    firstMs?: number;
    maxMs?: number;
  },
): Promise<T> {
  let wait = opts.firstMs ?? 250;
  for (let n = 1; ; n++) {
    opts.signal.throwIfAborted();
    try {
      return await attempt();
    } catch (e) {
      opts.signal.throwIfAborted();
      if (opts.fatal?.(e as Error)) throw e;
      opts.onFailure?.(e as Error, n);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, wait);
      function done(): void {
        clearTimeout(t);
        opts.signal.removeEventListener('abort', done);
        resolve();
      }
      opts.signal.addEventListener('abort', done, { once: true });
    });
    wait = Math.min(wait * 2, opts.maxMs ?? 5_000);
  }
}

/**
 * Redis when configured (shared by replicas), else the embedded store under `<dataDir>/meta`; the memo cache
 * in front either way. Fails fast when Redis does not answer a PING.
 */
export async function openMetadataStore(opts: OpenMetadataStoreOptions): Promise<MemoMetadataStore> {
  let inner: MetadataStore;
  if (opts.redis) {
    const client = opts.redisClient ?? createRedisClient(opts.redis);
    const onError = opts.onRedisError;
    client.on('error', (e: Error) => onError?.(e));
    inner = new RedisMetadataStore(client, { keyPrefix: opts.redis.keyPrefix });
    if (!opts.redisClient) await connectRedis(client, opts.redis);
  } else {
    inner = await EmbeddedMetadataStore.open(join(opts.dataDir, 'meta'));
  }
  const mapError = opts.redis ? redisUnavailable : undefined;
  return new MemoMetadataStore(inner, { mapError, ...opts.memo });
}

/** Redis answered but refuses these credentials: a configuration error, not an outage to wait out. */
export function isRedisAuthError(err: Error): boolean {
  return /\b(WRONGPASS|NOAUTH|NOPERM)\b/.test(err.message);
}

/** Any Redis failure (down, timed out, refused) is an outage to clients: 503 UNAVAILABLE, not 500. */
export function redisUnavailable(err: unknown): unknown {
  if (isRegistryError(err)) return err;
  return new RegistryError(ErrorCode.UNAVAILABLE, 'metadata store (redis) unavailable: only tags and links this replica knows are served; writes are refused until it answers', { cause: err, detail: { reason: (err as Error)?.message } });
}

/** The URL with its password masked, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}
