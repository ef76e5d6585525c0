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
export type { S3Options, StorageObserver } from './blob/s3-client.js';
export { nodeBlobFs, type BlobFs, type BlobFileHandle, type BlobStatResult } from './blob/blob-fs.js';
export { EmbeddedMetadataStore, type EmbeddedOptions, type RecoveryInfo } from './meta/embedded.js';
export { LockHeldError } from './meta/lock.js';
export { RedisMetadataStore, type RedisStoreOptions } from './meta/redis.js';
export { MemoMetadataStore, memoKeys, type MemoOptions } from './meta/memo.js';
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
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    client.disconnect();
    throw new Error(`metadata store: cannot reach redis at ${redactUrl(cfg.url)} (${(e as Error).message})`, { cause: e });
  }
}

/**
 * Redis when configured (shared by replicas), else the embedded store under `<dataDir>/meta`; the memo cache
 * in front either way. Fails fast when Redis does not answer a PING.
 */
export async function openMetadataStore(opts: OpenMetadataStoreOptions): Promise<MemoMetadataStore> {
  let inner: MetadataStore;
  if (opts.redis) {
    const client = createRedisClient(opts.redis);
    const onError = opts.onRedisError;
    client.on('error', (e: Error) => onError?.(e));
    inner = new RedisMetadataStore(client, { keyPrefix: opts.redis.keyPrefix });
    await connectRedis(client, opts.redis);
  } else {
    inner = await EmbeddedMetadataStore.open(join(opts.dataDir, 'meta'));
  }
  const mapError = opts.redis ? redisUnavailable : undefined;
  return new MemoMetadataStore(inner, { mapError, ...opts.memo });
}

/** Any Redis failure (down, timed out, refused) is an outage to clients: 503 UNAVAILABLE, not 500. */
export function redisUnavailable(err: unknown): unknown {
  if (isRegistryError(err)) return err;
  return new RegistryError(ErrorCode.UNAVAILABLE, 'metadata store (redis) unavailable', { cause: err, detail: { reason: (err as Error)?.message } });
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}
