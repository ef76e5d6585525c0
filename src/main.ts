import { createServer, type Server } from 'node:http';
import { createApp } from './app.js';
import { startLifecycle } from './lifecycle.js';
import { defaultAdvertiseUrl, openCluster, type ClusterMode } from './cluster.js';
import type { WharfConfig } from './config/types.js';
import { parseHostPort } from './config/index.js';
import { createLogger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { FsBlobStore, openMetadataStore, type MetadataStore } from './store/index.js';
import { createUpstream } from './upstream/index.js';
import type { Upstream } from './upstream/types.js';
import type { Logger } from './observability/types.js';

/** Starts wharf and resolves once it has shut down (SIGTERM/SIGINT drain in-flight requests first). */
export async function serve(config: WharfConfig): Promise<void> {
  const logger = createLogger({ level: config.log.level });
  const store = await FsBlobStore.open(config.dataDir).catch((e: Error) => fatal(logger, `data directory ${config.dataDir} is not usable: ${e.message}`));
  // Redis configured = replicas may share it and the data dir: coordinate fetches, revalidations and memo caches.
  let clusterMode: ClusterMode | undefined;
  if (config.redis) {
    const advertiseUrl = config.advertiseUrl ?? defaultAdvertiseUrl(config.listen);
    if (!config.advertiseUrl && advertiseUrl.includes('//127.0.0.1:')) {
      // Peers on other hosts cannot reach 127.0.0.1: they fall back to waiting for the commit instead of streaming.
      logger.warn({ advertiseUrl }, 'advertiseUrl not set and no external address found; replicas on other hosts cannot stream in-flight blobs from this one');
    }
    clusterMode = await openCluster({ redis: config.redis, dataDir: config.dataDir, advertiseUrl, logger }).catch((e: Error) => fatal(logger, e.message));
  }
  const meta: MetadataStore = clusterMode?.meta ?? (await openMetadataStore({ dataDir: config.dataDir }).catch((e: Error) => fatal(logger, e.message)));
  const metrics = createMetrics({ dataDir: config.dataDir, cacheMaxBytes: config.cache.maxSize });
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
  const app = createApp({ config, store, meta, upstreams, metrics, logger, cluster: clusterMode?.cluster, peerToken: clusterMode?.peerToken, lifecycle });

  const server = createServer(app.koa.callback());
  // Multi-GiB transfers: no total request timeout; idle and header timeouts instead, and keep-alive
  // longer than common load-balancer idle timeouts (60 s) so the balancer closes first.
  server.requestTimeout = 0;
  server.timeout = config.server.idleTimeout;
  server.keepAliveTimeout = config.server.keepAliveTimeout;
  server.headersTimeout = config.server.headersTimeout;
  await listen(server, config.listen);
  logger.info({ listen: config.listen, dataDir: config.dataDir, metadata: meta.kind, upstreams: config.upstreams.map((u) => u.name) }, 'wharf listening');


  let metricsServer: Server | undefined;
  if (app.metricsKoa && config.metrics.listen) {
    metricsServer = createServer(app.metricsKoa.callback());
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

function listen(server: Server, address: string): Promise<void> {
  const { host, port } = parseHostPort(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting, lets in-flight requests finish (bounded), then closes what is left. */
async function drain(server: Server, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
  await closed;
  clearTimeout(timer);
}

function fatal(logger: Logger, message: string): never {
  logger.error({}, message);
  process.stderr.write(`wharf: ${message}\n`);
  process.exit(1);
}
