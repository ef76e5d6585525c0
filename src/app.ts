import type Koa from 'koa';
import type { WharfConfig } from './config/types.js';
import { UpstreamNamespaces } from './core/namespaces.js';
import type { CorePolicy, UpstreamPolicy } from './core/policy.js';
import type { Cluster } from './core/cluster.js';
import { createRegistry } from './core/registry.js';
import type { Registry } from './core/types.js';
import { createHttpApp } from './http/server.js';
import { createClientAuth } from './http/auth/index.js';
import { internalEndpoint } from './http/internal.js';
import { metricsHandler } from './http/ops.js';
import { readiness } from './observability/health.js';
import type { PromMetrics } from './observability/metrics.js';
import type { Logger } from './observability/types.js';
import type { BlobStore, MetadataStore } from './store/types.js';
import type { Upstream } from './upstream/types.js';
import type { Lifecycle } from './lifecycle.js';
import KoaApp from 'koa';
import { uiDeps } from './ui-deps.js';

export interface AppDeps {
  config: WharfConfig;
  store: BlobStore;
  meta: MetadataStore;
  upstreams: ReadonlyMap<string, Upstream>;
  metrics: PromMetrics;
  logger: Logger;
  now?: () => number;
  /** replicas sharing Redis and the blob volume (cluster.ts) */
  cluster?: Cluster;
  /** the secret peers present to the internal endpoint (cluster mode) */
  peerToken?: () => string | undefined;
  lifecycle?: Lifecycle;
  /** key that signs client tokens when auth.token.secretFile is unset (cluster mode: shared through Redis) */
  authSecret?: () => Uint8Array;
}

export interface App {
  koa: Koa;
  /** set when metrics.listen gives /metrics its own listener */
  metricsKoa?: Koa;
  registry: Registry;
  close(): Promise<void>;
}

/**
 * How long shutdown waits for cache writes that outlived their requests (they normally take milliseconds):
 * a disk that stopped answering must not keep the process alive, and drainTimeout (30 s) plus this stays
 * inside the deploy files' 45 s stop grace.
 */
const SETTLE_LIMIT_MS = 10_000;

/** Composition root: wires the implementations to the interfaces. No behaviour of its own. */
export function createApp(deps: AppDeps): App {
  const { config, metrics, logger } = deps;
  const now = deps.now ?? Date.now;
  const policies = new Map<string, { upstream: Upstream; policy: UpstreamPolicy }>();
  for (const u of config.upstreams) {
    const upstream = deps.upstreams.get(u.name);
    if (upstream) policies.set(u.name, { upstream, policy: { tagFreshness: u.tagFreshness, notFoundTtl: u.notFoundTtl, prefetch: u.prefetch } });
  }
  const policy: CorePolicy = {
    upstreams: policies,
    overlay: config.push.overlay,
    maxManifestBytes: config.limits.maxManifestBytes,
    maxBlobBytes: config.limits.maxBlobBytes,
    fetchTimeout: config.cache.fetchTimeout,
    resumeAttempts: config.cache.resumeAttempts,
  };
  const namespaces = new UpstreamNamespaces(
    config.upstreams.map((u) => ({ name: u.name, host: new URL(u.url).host, aliases: u.aliases, default: u.default, libraryPrefix: u.libraryPrefix })),
  );
  const lifecycle = deps.lifecycle;
  const registry = createRegistry({ store: deps.store, meta: deps.meta, namespaces, policy, metrics, logger, now, cluster: deps.cluster }, { onAccess: lifecycle ? (d) => lifecycle.tracker.touch(d) : undefined });
  lifecycle?.setBusyCheck((d) => registry.blobService.isBusy(d));
  const metricsAuth = config.metrics.username && config.metrics.password ? { username: config.metrics.username, password: config.metrics.password } : undefined;
  const render = () => metrics.render();
  const clientAuth = config.auth && createClientAuth(config.auth, { registry, logger, secret: deps.authSecret, now });
  const adminRoutes = lifecycle?.adminRoutes({ namespaces, upstreams: deps.upstreams });
  const ui = config.ui.enabled
    ? uiDeps({ config, store: deps.store, meta: deps.meta, registry, metrics, upstreams: deps.upstreams, clientAuth, lifecycle, now, ...(adminRoutes ? { purge: (ref: string) => adminRoutes.admin.purge(ref) } : {}) })
    : undefined;
  const koa = createHttpApp({
    clientAuth,
    ui,
    registry,
    metrics,
    logger,
    maxManifestBytes: config.limits.maxManifestBytes,
    trustedProxies: config.server.trustedProxies,
    admin: adminRoutes,
    ops: {
      readiness: () =>
        readiness({
          dataDir: config.dataDir,
          minFreeBytes: config.health.minFreeBytes,
          checkRedis: deps.meta.kind === 'redis' ? () => deps.meta.ping() : undefined,
        }),
      renderMetrics: config.metrics.listen ? undefined : render,
      metricsAuth,
    },
  });
  if (deps.cluster && deps.peerToken) {
    koa.use(internalEndpoint({ inflightBody: (d, r) => registry.blobService.inflightBody(d, r), token: deps.peerToken }));
  }
  let metricsKoa: Koa | undefined;
  if (config.metrics.listen) {
    metricsKoa = new KoaApp();
    metricsKoa.use(metricsHandler(render, metricsAuth));
  }
  return {
    koa,
    metricsKoa,
    registry,
    async close() {
      await registry.settle(SETTLE_LIMIT_MS);
      for (const u of deps.upstreams.values()) await u.close().catch(() => {});
      await deps.meta.close().catch(() => {});
    },
  };
}
