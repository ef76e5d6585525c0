import { networkInterfaces } from 'node:os';
import { createApp } from './app.js';
import { startLifecycle } from './lifecycle.js';
import { defaultAdvertiseUrl, openCluster, type ClusterMode } from './cluster.js';
import type { WharfConfig } from './config/types.js';
import { createListener, drain, listen, type WharfServer } from './listener.js';
import { createLogger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { FsBlobStore, connectRedis, createRedisClient, openMetadataStore, S3BlobStore, type MetadataStore } from './store/index.js';
import { instanceId, openS3Store } from './s3-store.js';
import { createUpstream } from './upstream/index.js';
import { openNotifier, RedisStreamQueue } from './notify/index.js';
import type { Upstream } from './upstream/types.js';
import type { Logger } from './observability/types.js';

/** Starts wharf and resolves once it has shut down (SIGTERM/SIGINT drain in-flight requests first). */
export async function serve(config: WharfConfig): Promise<void> {
  const logger = createLogger({ level: config.log.level });
  // A stray rejected promise is a bug in one request's path; it must not take down the mirror every node
  // pulls through. It is logged with its stack and serving goes on.
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) }, 'unhandled promise rejection (a bug: please report it)');
  });
  // Redis outage: the memo serves last known tags and links for redis.outageGrace; /readyz and a gauge say so.
  // The metrics come first (the S3 store reports into them), so the reading is bound once the cluster is open.
  let degraded: (() => { since: number; graceMs: number } | undefined) | undefined;
  const metrics = createMetrics({ dataDir: config.dataDir, cacheMaxBytes: config.cache.maxSize, ...(config.redis ? { metadataDegraded: () => degraded?.() !== undefined } : {}) });
  const store = config.storage.s3
    ? await openS3Store(config.dataDir, config.storage.s3, {
        storageRequest: (op, status, seconds) => metrics.storageRequest(op, status, seconds),
        accessDenied: (op, message) => logger.error({ op, bucket: config.storage.s3?.bucket, reason: message }, 'object storage denied access: check storage.s3 credentials and the bucket policy'),
      }).catch((e: Error) => fatal(logger, e.message))
    : await FsBlobStore.open(config.dataDir, { directWrites: config.cache.directWrites }).catch((e: Error) => fatal(logger, `data directory ${config.dataDir} is not usable: ${e.message}`));
  // Without Redis the metadata is this process's own: a second wharf on the same bucket would gc what it links.
  const soleUse =
    store instanceof S3BlobStore && !config.redis
      ? await instanceId(config.dataDir)
          .then((id) => store.claimSoleUse(id, (e) => logger.warn({ err: e.message }, 'could not renew the claim on the bucket')))
          .catch((e: Error) => fatal(logger, e.message))
      : undefined;
  // Redis configured = replicas may share it and the data dir: coordinate fetches, revalidations and memo caches.
  let clusterMode: ClusterMode | undefined;
  if (config.redis) {
    // Interfaces are looked up (netlink) only without advertiseUrl: the systemd unit allows no AF_NETLINK.
    const advertiseUrl = config.advertiseUrl ?? derivedAdvertiseUrl(config, logger);
    clusterMode = await openCluster({ redis: config.redis, dataDir: config.dataDir, advertiseUrl, logger }).catch((e: Error) => fatal(logger, e.message));
  }
  const meta: MetadataStore = clusterMode?.meta ?? (await openMetadataStore({ dataDir: config.dataDir }).catch((e: Error) => fatal(logger, e.message)));
  const cm = clusterMode;
  if (cm && config.redis) degraded = degradedReading(cm, config.redis.outageGrace);
  const upstreams = new Map<string, Upstream>();
  for (const u of config.upstreams) {
    upstreams.set(
      u.name,
      createUpstream(u, {
        observer: metrics,
        maxManifestBytes: config.limits.maxManifestBytes,
        maxBlobBytes: config.limits.maxBlobBytes,
        onConnect: (attempt) => logger.debug({ upstream: u.name, ...attempt }, 'upstream connect'),
        proxyEnv: {
          httpProxy: process.env.HTTP_PROXY || process.env.http_proxy || undefined,
          httpsProxy: process.env.HTTPS_PROXY || process.env.https_proxy || undefined,
          noProxy: process.env.NO_PROXY || process.env.no_proxy || undefined,
        },
      }),
    );
  }
  const lifecycle = await startLifecycle({ config, store, meta, logger, metrics, lease: clusterMode?.lease });
  // With Redis the replicas share one queue (a stream); its own connection, as the other Redis users have.
  const redis = config.redis;
  const replicaId = clusterMode?.cluster.self.id;
  const sharedQueue =
    redis && replicaId
      ? async (onDrop: (endpoint: string, n: number) => void) => {
          const client = createRedisClient(redis);
          client.on('error', (err: Error) => logger.warn({ err: err.message }, 'notifications: redis connection trouble'));
          await connectRedis(client, redis);
          return RedisStreamQueue.open(client, { keyPrefix: redis.keyPrefix, replicaId, onDrop, endpoints: config.notifications.endpoints?.filter((e) => !e.disabled) ?? [] });
        }
      : undefined;
  const notifier = await openNotifier({ config: config.notifications, dataDir: config.dataDir, listen: config.listen, logger, observer: metrics, queue: sharedQueue }).catch((e: Error) =>
    fatal(logger, `notifications: ${e.message}`),
  );
  const app = createApp({ config, store, meta, upstreams, metrics, logger, cluster: clusterMode?.cluster, peerToken: clusterMode?.peerToken, lifecycle, authSecret: clusterMode?.authSecret, metadataDegraded: degraded, notifier });
  notifier?.start();

  const main = await createListener(app.koa.callback(), { timeouts: config.server, tls: config.tls, logger }).catch((e: Error) =>
    fatal(logger, `tls: cannot load ${config.tls?.cert} / ${config.tls?.key}: ${e.message}`),
  );
  const server = main.server;
  await listen(server, config.listen);
  logger.info(
    { listen: config.listen, https: config.tls !== undefined, dataDir: config.dataDir, metadata: meta.kind, blobs: config.storage.s3 ? `s3://${config.storage.s3.bucket}/${config.storage.s3.prefix ?? ''}` : 'dataDir', upstreams: config.upstreams.map((u) => u.name), directWrites: store.directWrites },
    'wharf listening',
  );
  // Certificate renewal (certbot, cert-manager) ends with a SIGHUP: new connections get the new pair.
  // Handled even without TLS, so `systemctl reload` never kills the process (Node's default for SIGHUP).
  process.on('SIGHUP', () => void (config.tls ? main.reloadTls() : logger.info({}, 'SIGHUP: no tls configured, nothing to reload')));


  // The metrics listener stays plain HTTP: scrapers sit on the internal network.
  let metricsServer: WharfServer | undefined;
  if (app.metricsKoa && config.metrics.listen) {
    metricsServer = (await createListener(app.metricsKoa.callback(), { timeouts: config.server, logger })).server;
    await listen(metricsServer, config.metrics.listen);
    logger.info({ listen: config.metrics.listen }, 'metrics listening');
  }

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'draining');
      void drain(server, config.server.drainTimeout)
        .then(() => (metricsServer ? drain(metricsServer, 1000) : undefined))
        .then(() => lifecycle.stop())
        .then(() => soleUse?.stop())
        .then(() => clusterMode?.close().catch(() => undefined))
        .then(() => app.close())
        .finally(() => {
          logger.info({}, 'stopped');
          resolve();
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** advertiseUrl from the listen address (and the host's interfaces for a wildcard listen), with the scheme served. */
function derivedAdvertiseUrl(config: WharfConfig, logger: Logger): string {
  let interfaces: ReturnType<typeof networkInterfaces> = {};
  try {
    interfaces = networkInterfaces();
  } catch (e) {
    // e.g. RestrictAddressFamilies without AF_NETLINK: "uv_interface_addresses returned Unknown system error 97"
    logger.warn({ err: (e as Error).message }, 'cannot list network interfaces; set advertiseUrl');
  }
  const derived = defaultAdvertiseUrl(config.listen, interfaces);
  const advertiseUrl = config.tls ? derived.replace(/^http:/, 'https:') : derived;
  if (advertiseUrl.includes('//127.0.0.1:')) {
    // Peers on other hosts cannot reach 127.0.0.1: they fall back to waiting for the commit instead of streaming.
    logger.warn({ advertiseUrl }, 'advertiseUrl not set and no external address found; replicas on other hosts cannot stream in-flight blobs from this one');
  }
  return advertiseUrl;
}

function degradedReading(cm: ClusterMode, graceMs: number): () => { since: number; graceMs: number } | undefined {
  return () => {
    const since = cm.meta.degradedSince();
    return since === undefined ? undefined : { since, graceMs };
  };
}

function fatal(logger: Logger, message: string): never {
  logger.error({}, message);
  process.stderr.write(`wharf: ${message}\n`);
  process.exit(1);
}
