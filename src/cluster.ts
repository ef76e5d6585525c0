import { networkInterfaces } from 'node:os';
import type { Cluster as RedisCluster, Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import type { RedisConfig } from './config/types.js';
import { parseHostPort } from './config/index.js';
import type { Cluster, PeerRef } from './core/cluster.js';
import { join } from 'node:path';
import { ErrorCode, RegistryError, isRegistryError } from './oci/index.js';
import type { Logger } from './observability/types.js';
import {
  connectRedis,
  createRedisClient,
  FETCH_LEASE_MS,
  openMetadataStore,
  readSnapshot,
  RedisCoordinator,
  isRedisAuthError,
  redactUrl,
  redisUnavailable,
  retryUntil,
  startInvalidation,
  startSnapshots,
  type HeldLease,
  type SnapshotWriter,
  type InvalidationBus,
  type MemoMetadataStore,
} from './store/index.js';
import { PeerClient } from './upstream/peer.js';

export interface ClusterMode {
  /** the shared metadata store: Redis behind the memo, memo invalidated by other replicas' writes */
  meta: MemoMetadataStore;
  cluster: Cluster;
  /** secret the internal endpoint checks */
  peerToken(): string | undefined;
  /** key signing client tokens, the same on every replica (a token from one works on all) */
  authSecret(): Uint8Array;
  /** a named lease held by one replica at a time (eviction) */
  lease(name: string, ttlMs: number): Promise<HeldLease | undefined>;
  /** temp files younger than this may belong to a live fetch on another replica */
  tempGraceMs: number;
  close(): Promise<void>;
}

export interface OpenClusterOptions {
  redis: RedisConfig;
  dataDir: string;
  /** how peers reach this replica (config advertiseUrl, else derived from listen) */
  advertiseUrl: string;
  logger: Logger;
  replicaId?: string;
}

/** `http://<listen host>:<port>`, with 127.0.0.1 for a wildcard host (right for one machine; set advertiseUrl otherwise). */
/**
 * The URL peers reach this replica at when `advertiseUrl` is not set: the listen address, or for a wildcard
 * listen (0.0.0.0, ::) this host's first non-loopback IPv4 address (the container's address on a Swarm or
 * Kubernetes network); 127.0.0.1 only when there is none.
 */
export function defaultAdvertiseUrl(listen: string, interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): string {
  const { host, port } = parseHostPort(listen);
  const wildcard = host === '' || host === '0.0.0.0' || host === '::';
  const external = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .find((a) => a.family === 'IPv4' && !a.internal)?.address;
  const h = wildcard ? (external ?? '127.0.0.1') : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/**
 * Replicas sharing one Redis and one blob volume: the Redis metadata store with cross-replica memo
 * invalidation, fetch leases and shared revalidation (RedisCoordinator), and peer streaming (PeerClient).
 * Three connections: the store's, the coordinator's (leases keep renewing while the store is busy), the subscriber's.
 */
export async function openCluster(opts: OpenClusterOptions): Promise<ClusterMode> {
  const { logger, redis } = opts;
  const self: PeerRef = { id: opts.replicaId ?? randomBytes(8).toString('hex'), url: opts.advertiseUrl };
  const logError = throttled((err: Error) => logger.warn({ err: err.message }, 'redis connection trouble'), 10_000);
  let bus: InvalidationBus | undefined;
  const [storeClient, coordClient, subClient] = [createRedisClient(redis), createRedisClient(redis), createRedisClient(redis)];
  for (const c of [coordClient, subClient]) c.on('error', logError);
  const meta = await openMetadataStore({ dataDir: opts.dataDir, redis, redisClient: storeClient, memo: { onChange: (k) => bus?.publish(k), outageGraceMs: redis.outageGrace }, onRedisError: logError });
  const coord = new RedisCoordinator(coordClient, { keyPrefix: redis.keyPrefix, self });
  const snapshots = await openSnapshots(meta, opts, logger);
  let secret: { get: () => Uint8Array; stop: () => void } | undefined;

  // Start-up talks to Redis in the background, retried with a capped backoff: a replica started during an
  // outage serves what it knows (degraded) instead of exiting, and joins the cluster when Redis answers.
  const stopping = new AbortController();
  let firstFailure!: () => void;
  const failedOnce = new Promise<void>((resolve) => (firstFailure = resolve));
  const retry = <T>(step: () => Promise<T>): Promise<T> =>
    retryUntil(step, {
      signal: stopping.signal,
      onFailure: (e, n) => {
        if (n === 1) firstFailure();
        logError(e);
      },
      fatal: isRedisAuthError,
    });
  const startup = (async () => {
    await retry(async () => {
      for (const c of [storeClient, coordClient, subClient]) if (c.status !== 'ready') await connectRedis(c, redis);
    });
    bus = await retry(() =>
      startInvalidation({
        publisher: coordClient,
        subscriber: subClient,
        channel: `${redis.keyPrefix}invalidate`,
        selfId: self.id,
        onRemote: (key) => meta.invalidate(key),
        onResync: () => meta.invalidateAll(),
        onError: logError,
      }),
    );
    await retry(() => coord.start());
    secret = await retry(() => sharedSecret(coordClient, `${redis.keyPrefix}auth:token-secret`));
    // Whatever this replica cached while cut off may have changed meanwhile.
    meta.invalidateAll();
    await meta.ping().catch(() => undefined);
    logger.info({ replica: self.id, advertiseUrl: self.url }, 'cluster mode: coordinating replicas through redis');
  })();
  const refused = await Promise.race([startup.then(() => undefined, (e: Error) => e), failedOnce.then(() => undefined)]);
  if (refused) {
    // Wrong credentials: a configuration error, reported at start rather than served around.
    await snapshots.stop();
    for (const c of [storeClient, coordClient, subClient]) c.disconnect();
    throw refused;
  }
  startup.catch((e: Error) => {
    if (!stopping.signal.aborted) logger.error({ err: e.message }, 'redis refused this replica (check redis.password and the url): staying degraded until restarted');
  });
  // Redis unreachable at start: degraded at once (the failed ping says so), until a ping answers again.
  if (!secret) {
    logger.warn({ redis: redactUrl(redis.url) }, 'redis unreachable at start: serving what this replica knows (degraded), writes refused, connecting in the background');
    await meta.ping().catch(() => undefined);
  }
  const probe = setInterval(() => void (secret && meta.degradedSince() !== undefined ? meta.ping().catch(() => undefined) : undefined), 1000);
  probe.unref();
  const peers = new PeerClient({ token: () => coord.peerToken() });

  const cluster: Cluster = {
    self,
    claimFetch: (digest) => unavailable(coord.claimFetch(digest)),
    async streamFromPeer(holder, digest, range, signal) {
      if (!holder.url || holder.id === self.id) return undefined;
      return peers.inflightBlob(holder.url, digest, range, signal);
    },
    waitForRelease: (digest, signal) => unavailable(coord.waitForRelease(digest, signal)),
    holdUpload: (id) => unavailable(coord.lease(`upload:${id}`, FETCH_LEASE_MS)),
    // Redis unreachable: revalidate here (the tag's freshness matters more than sharing one HEAD).
    claimRevalidation: (repoKey, tag, windowMs) => coord.claimRevalidation(repoKey, tag, windowMs).catch(() => true),
    claimWindow: (name, windowMs) => unavailable(coord.claimWindow(name, windowMs)),
    claimLease: (name) => unavailable(coord.lease(name, FETCH_LEASE_MS)),
    waitForLease: (name, signal) => unavailable(coord.waitForLease(name, signal)),
  };

  return {
    meta,
    cluster,
    peerToken: () => coord.peerToken(),
    authSecret: () => {
      // The key is shared through Redis: until it is read, no token can be issued or checked.
      if (!secret) throw new RegistryError(ErrorCode.UNAVAILABLE, 'token auth unavailable: the signing key replicas share through redis has not been read yet (redis unreachable since start-up)');
      return secret.get();
    },
    lease: (name, ttlMs) => unavailable(coord.lease(name, ttlMs)),
    tempGraceMs: FETCH_LEASE_MS,
    async close() {
      stopping.abort();
      clearInterval(probe);
      await startup.catch(() => undefined);
      await snapshots.stop();
      secret?.stop();
      await coord.close();
      if (bus) await bus.close();
      else subClient.disconnect();
      await peers.close().catch(() => undefined);
      await coordClient.quit().catch(() => coordClient.disconnect());
    },
  };
}

/**
 * This replica's snapshot of last known tags and links, `<dataDir>/meta-snapshots/<advertised host_port>.json`
 * (one file per replica on a shared data dir): loaded now (used only while Redis fails, within the outage
 * grace), rewritten every `redis.snapshotInterval` and at shutdown.
 */
async function openSnapshots(meta: MemoMetadataStore, opts: OpenClusterOptions, logger: Logger): Promise<SnapshotWriter> {
  let name: string;
  try {
    name = new URL(opts.advertiseUrl).host;
  } catch {
    name = opts.advertiseUrl;
  }
  const path = join(opts.dataDir, 'meta-snapshots', `${name.replace(/[^A-Za-z0-9.-]/g, '_')}.json`);
  const entries = await readSnapshot(path).catch((e: Error) => {
    logger.warn({ err: e.message, path }, 'snapshot of last known tags and links unreadable: starting without it');
    return [];
  });
  meta.restoreKnown(entries);
  const onError = throttled((e: Error) => logger.warn({ err: e.message, path }, 'cannot write the snapshot of last known tags and links'), 60_000);
  return startSnapshots({ path, everyMs: opts.redis.snapshotInterval, entries: () => meta.exportKnown(), onError });
}

/**
 * A random key the first replica proposes (SET NX) and every replica adopts; re-read periodically so
 * replicas converge again after Redis lost its data. Not the peer token: that one travels between replicas.
 */
async function sharedSecret(client: Redis | RedisCluster, key: string): Promise<{ get: () => Uint8Array; stop: () => void }> {
  let value = randomBytes(32).toString('base64');
  let bytes = new Uint8Array(Buffer.from(value, 'base64'));
  const load = async (): Promise<void> => {
    await client.set(key, value, 'NX');
    const held = await client.get(key);
    if (held !== null && held !== value) {
      value = held;
      bytes = new Uint8Array(Buffer.from(held, 'base64'));
    }
  };
  await load();
  const timer = setInterval(() => void load().catch(() => undefined), 30_000);
  timer.unref();
  return { get: () => bytes, stop: () => clearInterval(timer) };
}

async function unavailable<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (isRegistryError(e) || (e as Error)?.name === 'AbortError') throw e;
    throw redisUnavailable(e);
  }
}

function throttled(fn: (err: Error) => void, everyMs: number): (err: Error) => void {
  let last = 0;
  return (err) => {
    const now = Date.now();
    if (now - last < everyMs) return;
    last = now;
    fn(err);
  };
}
