import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { WharfConfig } from './config/types.js';
import { BrowseService } from './core/browse.js';
import type { JobsApi } from './http/api/jobs.js';
import type { InflightDownload } from './core/blob-service.js';
import type { PullCounter } from './core/pull-counter.js';
import type { Registry } from './core/types.js';
import type { ApiDeps, ApiStats } from './http/api/index.js';
import { Sessions, type SessionRevocations } from './http/api/session.js';
import type { ClientAuth, ExternalTokenAuth } from './http/auth/index.js';
import { ExternalViewers } from './http/api/external-viewer.js';
import { LOGIN_LIMITS, LoginLimiter } from './http/auth/login-limiter.js';
import { TokenServiceClient } from './http/auth/token-service.js';
import { macUnder } from './http/auth/tokens.js';
import type { Lifecycle } from './lifecycle.js';
import type { PromMetrics } from './observability/metrics.js';
import { readTraffic } from './observability/traffic.js';
import type { SizeReport } from './core/lifecycle-types.js';
import type { BlobStore, MetadataStore } from './store/types.js';
import type { Upstream } from './upstream/types.js';

/** the cache size report walks every link and blob: the dashboard's refreshes share one for this long */
const SIZE_REPORT_TTL_MS = 10_000;
/** repositories in each top-pulls list */
const TOP_PULLS = 10;

export interface UiDepsInput {
  config: WharfConfig;
  store: BlobStore;
  meta: MetadataStore;
  registry: Registry;
  metrics: PromMetrics;
  upstreams: ReadonlyMap<string, Pick<Upstream, 'name' | 'rateLimit' | 'health' | 'throttledUntil'>>;
  /** manifest pulls by repository (the dashboard's top images) */
  pulls?: PullCounter;
  /** this process's downloads from upstreams (blob-service) */
  downloads?: () => InflightDownload[];
  clientAuth?: ClientAuth;
  /** external token mode: /v2's verifier and the key session cookies are signed and sealed with */
  external?: { auth: ExternalTokenAuth; secret: () => Uint8Array };
  lifecycle?: Lifecycle;
  purge?: (ref: string) => Promise<object>;
  /** gc and verify as jobs (core/jobs.ts), shared with the admin API */
  jobs?: JobsApi;
  now: () => number;
}

/** Composition of the web UI's API: the same services /v2 and the admin API use. */
export function uiDeps(i: UiDepsInput): { api: ApiDeps; assetsDir?: string; pages: boolean } {
  const { config, now } = i;
  const tracker = i.lifecycle?.tracker;
  const browser = new BrowseService({ store: i.store, meta: i.meta, namespaces: i.registry.namespaces, now, ...(tracker ? { recentAccess: (d) => tracker.peek(d) } : {}) });
  if (config.ui.enabled) browser.prime();
  let sizes: { at: number; report: Promise<SizeReport> } | undefined;
  const sizeReport = () => {
    const evictor = i.lifecycle?.evictor;
    if (!evictor) return Promise.resolve(undefined);
    if (!sizes || now() - sizes.at > SIZE_REPORT_TTL_MS) sizes = { at: now(), report: evictor.sizeReport() };
    return sizes.report;
  };
  /** `wharf stats`'s counts: repositories and tags from the same snapshot the list shows; uploads in progress. */
  const counts = async () => {
    const repositories = { total: 0, local: 0, mirrored: 0 };
    let tags = 0;
    for (const r of await browser.repositories()) {
      repositories.total += 1;
      if (r.local) repositories.local += 1;
      if (r.mirrored) repositories.mirrored += 1;
      tags += r.tags.length;
    }
    let uploads = 0;
    for await (const _ of i.meta.listUploads()) uploads += 1;
    return { repositories, tags, uploads };
  };
  const names = i.registry.namespaces;
  /**
   * The name a repository key is listed under, when the viewer may pull it: only if that name still leads to
   * the key (a repository of an upstream since removed from the configuration would name another).
   */
  const shownAs = (key: string, visible: (name: string) => boolean): string | undefined => {
    const name = names.displayName(key);
    try {
      return names.resolve(name).key === key && visible(name) ? name : undefined;
    } catch {
      return undefined;
    }
  };
  const topPulls = async (visible: (name: string) => boolean): Promise<ApiStats['topPulls']> => {
    const pulls = i.pulls;
    if (!pulls) return { hour: [], day: [] };
    const shown = (key: string) => shownAs(key, visible) !== undefined;
    const list = async (w: 'hour' | 'day') => (await pulls.top(w, TOP_PULLS, shown)).map((p) => ({ repository: names.displayName(p.key), pulls: p.pulls }));
    const [hour, day] = await Promise.all([list('hour'), list('day')]);
    return { hour, day };
  };
  const downloads = (visible: (name: string) => boolean): ApiStats['downloads'] =>
    (i.downloads?.() ?? []).flatMap(({ repoKey, ...d }) => {
      const repository = shownAs(repoKey, visible);
      return repository !== undefined ? [{ repository, ...d }] : [];
    });
  const stats = async (visible: (name: string) => boolean): Promise<ApiStats> => {
    const t = await readTraffic(i.metrics.registry);
    const r = await sizeReport().catch(() => undefined);
    const cache: ApiStats['cache'] = {
      usedBytes: r ? r.mirroredBytes + r.localBytes + r.unlinkedBytes : 0,
      localBytes: r?.localBytes ?? 0,
      mirroredBytes: r?.mirroredBytes ?? 0,
      blobs: r?.blobs ?? 0,
      highWatermark: config.cache.highWatermark,
      lowWatermark: config.cache.lowWatermark,
      mirroredBlobs: r?.mirroredBlobs ?? 0,
      localBlobs: r?.localBlobs ?? 0,
      unlinkedBytes: r?.unlinkedBytes ?? 0,
      unlinkedBlobs: r?.unlinkedBlobs ?? 0,
      ...(config.cache.maxSize !== undefined ? { maxSize: config.cache.maxSize } : {}),
    };
    const upstreams = [...i.upstreams.values()].map((u) => {
      const rl = u.rateLimit();
      const health = u.health?.();
      const throttledUntil = u.throttledUntil?.();
      return { name: u.name, ...(rl ? { rateLimit: rl } : {}), ...(health ? { health } : {}), ...(throttledUntil !== undefined ? { throttledUntil } : {}) };
    });
    const top = await topPulls(visible).catch((): ApiStats['topPulls'] => ({ hour: [], day: [] }));
    return { ...t, hitRatio: t.requests > 0 ? t.hits / t.requests : null, cache, upstreams, downloads: downloads(visible), topPulls: top, ...(await counts()) };
  };
  const auth = i.clientAuth;
  const external = i.external && externalViewers(i.external, now, revocationsIn(i.meta));
  const api: ApiDeps = {
    registry: i.registry,
    browser,
    stats,
    ...(i.pulls ? { pullCounts: () => i.pulls!.counts('day') } : {}),
    upstreams: config.upstreams.map((u) => u.name),
    ...(auth ? { auth, sessions: new Sessions({ mac: (l, d) => auth.tokens.mac(l, d), now, random: randomBytes, revocations: revocationsIn(i.meta) }) } : {}),
    ...(external ? { external: external.viewers, sessions: external.sessions } : {}),
    ...(i.purge ? { purge: i.purge } : {}),
    ...(config.ui.pullHost !== undefined ? { pullHost: config.ui.pullHost } : {}),
    ...(i.jobs ? { maintenance: { jobs: i.jobs, admins: config.ui.admins ?? [] } } : {}),
  };
  const assetsDir = [new URL('../dist/ui', import.meta.url), new URL('./ui', import.meta.url)].map((u) => fileURLToPath(u)).find((d) => existsSync(`${d}/index.html`));
  const pages = config.ui.enabled;
  return assetsDir ? { api, assetsDir, pages } : { api, pages };
}

/** External token mode: logins and rights from the token service; sessions signed and sealed under the shared key. */
function externalViewers(
  e: { auth: ExternalTokenAuth; secret: () => Uint8Array },
  now: () => number,
  revocations: SessionRevocations,
): { viewers: ExternalViewers; sessions: Sessions } {
  const sessions = new Sessions({ mac: macUnder(e.secret), now, random: randomBytes, revocations });
  const viewers = new ExternalViewers({
    auth: e.auth,
    tokens: new TokenServiceClient(e.auth.service),
    sessions,
    limiter: new LoginLimiter({ ...LOGIN_LIMITS, now }),
    now,
  });
  return { viewers, sessions };
}

/** Logged-out sessions in the metadata store (Redis with replicas), each kept until it would have expired. */
function revocationsIn(meta: Pick<MetadataStore, 'getState' | 'setState'>): SessionRevocations {
  const key = (sid: string) => `ui-session-revoked:${sid}`;
  return {
    revoke: (sid, ttlMs) => meta.setState(key(sid), '1', ttlMs),
    revoked: async (sid) => (await meta.getState(key(sid))) !== undefined,
  };
}
