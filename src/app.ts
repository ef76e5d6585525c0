import { randomBytes } from 'node:crypto';
import type Koa from 'koa';
import type { WharfConfig } from './config/types.js';
import { JobRunner } from './core/jobs.js';
import { UpstreamNamespaces } from './core/namespaces.js';
import type { CorePolicy, UpstreamPolicy } from './core/policy.js';
import type { Cluster } from './core/cluster.js';
import { createRegistry } from './core/registry.js';
import { PullCounter } from './core/pull-counter.js';
import type { Registry } from './core/types.js';
import { createHttpApp } from './http/server.js';
import { createClientAuth, createExternalAuth, isExternalTokenAuth, signingSecret } from './http/auth/index.js';
import { internalEndpoint } from './http/internal.js';
import { metricsHandler, scrapeCheck } from './http/ops.js';
import { readiness } from './observability/health.js';
import type { PromMetrics } from './observability/metrics.js';
import type { Logger } from './observability/types.js';
import type { BlobStore, MetadataStore } from './store/types.js';
import type { Upstream } from './upstream/types.js';
import type { Lifecycle } from './lifecycle.js';
import type { Notifier } from './notify/index.js';
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
  /** cluster mode: since when the metadata store is degraded (Redis outage), for /readyz */
  metadataDegraded?: () => { since: number; graceMs: number } | undefined;
  /** webhooks (src/notify/); absent when no endpoint is configured */
  notifier?: Notifier;
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

/** how often pull counts are written to the metadata store (the dashboard's own replica shows them at once) */
const PULL_FLUSH_MS = 5_000;

/** Composition root: wires the implementations to the interfaces. No behaviour of its own. */
export function createApp(deps: AppDeps): App {
  const { config, metrics, logger } = deps;
  const now = deps.now ?? Date.now;
  const policies = new Map<string, { upstream: Upstream; policy: UpstreamPolicy }>();
  for (const u of config.upstreams) {
    const upstream = deps.upstreams.get(u.name);
    if (upstream) policies.set(u.name, { upstream, policy: { tagFreshness: u.tagFreshness, notFoundTtl: u.notFoundTtl, quotaProbeInterval: u.quotaProbeInterval, prefetch: u.prefetch } });
  }
  const policy: CorePolicy = {
    upstreams: policies,
    overlay: config.push.overlay,
    immutableTags: config.push.immutableTags,
    localNamespaces: config.localNamespaces,
    maxManifestBytes: config.limits.maxManifestBytes,
    maxBlobBytes: config.limits.maxBlobBytes,
    fetchTimeout: config.cache.fetchTimeout,
    resumeAttempts: config.cache.resumeAttempts,
    tagLists: { maxPages: config.limits.maxUpstreamTagPages, maxTags: config.limits.maxUpstreamTags },
  };
  const namespaces = new UpstreamNamespaces(
    config.upstreams.map((u) => ({ name: u.name, host: new URL(u.url).host, aliases: u.aliases, default: u.default, libraryPrefix: u.libraryPrefix })),
  );
  const lifecycle = deps.lifecycle;
  const registry = createRegistry({ store: deps.store, meta: deps.meta, namespaces, policy, metrics, logger, now, cluster: deps.cluster, events: deps.notifier }, { onAccess: lifecycle ? (d) => lifecycle.tracker.touch(d) : undefined });
  lifecycle?.setBusyCheck((d) => registry.blobService.isBusy(d));
  lifecycle?.setEvents(deps.notifier, namespaces);
  // the rate-limit gauges show the cluster's shared figure, even on a replica that has not asked upstream lately
  const render = async () => {
    await registry.reportQuota().catch(() => undefined);
    return metrics.render();
  };
  const external = config.auth && isExternalTokenAuth(config.auth) ? config.auth : undefined;
  const clientAuth = config.auth && !external ? createClientAuth(config.auth, { registry, logger, secret: deps.authSecret, now }) : undefined;
  const mayScrape = scrapeCheck({
    basic: config.metrics.username && config.metrics.password ? { username: config.metrics.username, password: config.metrics.password } : undefined,
    users: config.metrics.auth,
    user: clientAuth && ((ctx) => clientAuth.credentialsUser(ctx)),
  });
  const admin = lifecycle?.adminRoutes({ namespaces, upstreams: deps.upstreams, events: deps.notifier });
  // One gc / verify at a time in this process, whether the admin API (CLI) or the web UI starts it.
  const jobs = admin && new JobRunner({ gc: (o) => admin.admin.gc(o), verify: (o) => admin.admin.verify(o), now, newId: () => randomBytes(8).toString('hex'), logger });
  const adminRoutes = admin && { ...admin, events: deps.notifier, jobs };
  const externalAuth = external && createExternalAuth(external, { namespaces, now });
  // Pulls are counted only for the dashboard that shows them.
  const pulls = config.ui.enabled
    ? new PullCounter(deps.meta, { flushIntervalMs: PULL_FLUSH_MS, now, onError: (err) => logger.warn({ err: (err as Error).message }, 'pull counts not written; retrying') })
    : undefined;
  // Behind an external token service the UI's logins and rights come from that service (http/api/external-viewer.ts).
  // The JSON API is served with or without the pages (ui.enabled): `wharf ls` and `wharf stats` read it.
  const ui = uiDeps({
    config,
    store: deps.store,
    meta: deps.meta,
    registry,
    metrics,
    upstreams: deps.upstreams,
    clientAuth,
    lifecycle,
    now,
    ...(pulls ? { pulls } : {}),
    downloads: () => registry.blobService.downloads(),
    ...(external && externalAuth ? { external: { auth: externalAuth, secret: signingSecret(external, deps.authSecret) } } : {}),
    ...(adminRoutes ? { purge: (ref: string) => adminRoutes.admin.purge(ref), jobs: adminRoutes.jobs } : {}),
  });
  const koa = createHttpApp({
    clientAuth,
    externalAuth,
    ui,
    registry,
    metrics,
    logger,
    maxManifestBytes: config.limits.maxManifestBytes,
    trustedProxies: config.server.trustedProxies,
    events: deps.notifier,
    ...(pulls ? { pulls } : {}),
    admin: adminRoutes,
    ops: {
      readiness: () =>
        readiness({
          dataDir: config.dataDir,
          minFreeBytes: config.health.minFreeBytes,
          checkRedis: deps.meta.kind === 'redis' ? () => deps.meta.ping() : undefined,
          degraded: deps.metadataDegraded,
        }),
      renderMetrics: config.metrics.listen ? undefined : render,
      mayScrape,
    },
  });
  if (deps.cluster && deps.peerToken) {
    koa.use(internalEndpoint({ inflightBody: (d, r) => registry.blobService.inflightBody(d, r), token: deps.peerToken }));
  }
  let metricsKoa: Koa | undefined;
  if (config.metrics.listen) {
    metricsKoa = new KoaApp();
    metricsKoa.use(metricsHandler(render, mayScrape));
  }
  return {
    koa,
    metricsKoa,
    registry,
    async close() {
      await registry.settle(SETTLE_LIMIT_MS);
      await pulls?.close().catch(() => {});
      await deps.notifier?.close().catch(() => {});
      for (const u of deps.upstreams.values()) await u.close().catch(() => {});
      await deps.meta.close().catch(() => {});
    },
  };
}
