import { networkInterfaces } from 'node:os';
import type { Cluster as RedisCluster, Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import type { RedisConfig } from './config/types.js';
import { parseHostPort } from './config/index.js';
import type { Cluster, PeerRef } from './core/cluster.js';
import { isRegistryError } from './oci/index.js';
import type { Logger } from './observability/types.js';
import {
  connectRedis,
  createRedisClient,
  FETCH_LEASE_MS,
  openMetadataStore,
  RedisCoordinator,
  redisUnavailable,
  startInvalidation,
  type HeldLease,
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
  const meta = await openMetadataStore({ dataDir: opts.dataDir, redis, memo: { onChange: (k) => bus?.publish(k), outageGraceMs: redis.outageGrace }, onRedisError: logError });
  const coordClient = createRedisClient(redis);
  const subClient = createRedisClient(redis);
  for (const c of [coordClient, subClient]) c.on('error', logError);
  try {
    await connectRedis(coordClient, redis);
    await connectRedis(subClient, redis);
    bus = await startInvalidation({
      publisher: coordClient,
      subscriber: subClient,
      channel: `${redis.keyPrefix}invalidate`,
      selfId: self.id,
      onRemote: (key) => meta.invalidate(key),
      onResync: () => meta.invalidateAll(),
      onError: logError,
    });
  } catch (e) {
    coordClient.disconnect();
    subClient.disconnect();
    await meta.close();
    throw e;
  }
  const coord = new RedisCoordinator(coordClient, { keyPrefix: redis.keyPrefix, self });
  await coord.start();
  const secret = await sharedSecret(coordClient, `${redis.keyPrefix}auth:token-secret`);
  const peers = new PeerClient({ token: () => coord.peerToken() });
  logger.info({ replica: self.id, advertiseUrl: self.url }, 'cluster mode: coordinating replicas through redis');

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
    authSecret: secret.get,
    lease: (name, ttlMs) => unavailable(coord.lease(name, ttlMs)),
    tempGraceMs: FETCH_LEASE_MS,
    async close() {
      secret.stop();
      await coord.close();
      await bus?.close();
      await peers.close().catch(() => undefined);
      await coordClient.quit().catch(() => coordClient.disconnect());
    },
  };
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
