import { isIndexType, parseManifest, type Digest, type Platform } from '../oci/index.js';
import type { BlobStore, LinkRecord, MetadataStore } from '../store/types.js';
import type { Browser, ImageConfigSummary, ImageDetail, RepositorySummary, TagSummary } from './browse-types.js';
import { maybeYield } from './lifecycle-types.js';
import type { Namespaces } from './types.js';

export interface BrowseDeps {
  store: Pick<BlobStore, 'read'>;
  meta: MetadataStore;
  namespaces: Namespaces;
  /** access times not yet written to the metadata store (the access tracker) */
  recentAccess?: (digest: Digest) => number | undefined;
  now: () => number;
  /** how long a snapshot of every repository is served before it is rebuilt (default 3 s) */
  snapshotTtlMs?: number;
  /** how long a caller waits for a rebuild before it gets the previous snapshot (default 300 ms) */
  staleAfterMs?: number;
}

const PAGE = 1000;
/** an image config larger than this is not parsed for the UI */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** a repository page reads the platforms of at most this many indexes */
const MAX_PLATFORM_READS = 500;

/**
 * The repositories, tags and images wharf holds, from its metadata and its own blob files: one scan of the
 * link index per snapshot (shared by concurrent callers), nothing from an upstream and nothing counted as a
 * cache request or an access (browsing must not move the hit ratio or keep content from eviction).
 */
export class BrowseService implements Browser {
  private snapshot?: { at: number; repos: RepositorySummary[] };
  private building?: Promise<RepositorySummary[]>;
  /** bumped by invalidate(): a build that started before it does not become the snapshot */
  private generation = 0;
  private buildingGeneration = -1;
  private lastBuildMs = 0;

  constructor(private readonly d: BrowseDeps) {}

  /**
   * A snapshot older than the TTL is rebuilt; the caller waits for the new one up to a short limit and
   * else gets the previous one (a large catalog's rebuild finishes in the background for the next call).
   * Only the very first call, or one after invalidate(), always waits.
   */
  async repositories(): Promise<RepositorySummary[]> {
    // A catalog that takes long to scan is rescanned less often: at most a tenth of the time goes to it.
    const ttl = Math.max(this.d.snapshotTtlMs ?? 3000, 10 * this.lastBuildMs);
    const s = this.snapshot;
    if (!s) return this.rebuild();
    if (this.d.now() - s.at < ttl) return s.repos;
    const fresh = this.rebuild();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stale = new Promise<RepositorySummary[]>((resolve) => {
      timer = setTimeout(() => resolve(s.repos), this.d.staleAfterMs ?? 300);
      timer.unref?.();
    });
    try {
      return await Promise.race([fresh.catch(() => s.repos), stale]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts building the first snapshot (at start-up, so the first visitor does not wait for it). */
  prime(): void {
    void this.rebuild().catch(() => {});
  }

  invalidate(): void {
    this.snapshot = undefined;
    this.generation += 1;
  }

  /** One build at a time, except that a build begun before an invalidate() is not joined (it may miss the change). */
  private rebuild(): Promise<RepositorySummary[]> {
    if (this.building && this.buildingGeneration === this.generation) return this.building;
    const generation = this.generation;
    this.buildingGeneration = generation;
    const at = this.d.now();
    const building = this.build().then((repos) => {
      this.lastBuildMs = Math.max(0, this.d.now() - at);
      if (generation === this.generation) this.snapshot = { at, repos };
      return repos;
    });
    this.building = building;
    const clear = () => {
      if (this.building === building) this.building = undefined;
    };
    building.then(clear, clear);
    return building;
  }

  async repository(key: string): Promise<RepositorySummary | undefined> {
    const rec = await this.d.meta.getRepo(key);
    if (!rec) return undefined;
    const summary = await this.summarize(key, rec);
    let reads = 0;
    for (const t of summary.tags) {
      if (!isIndexType(t.mediaType) || reads++ >= MAX_PLATFORM_READS) continue;
      const parsed = await this.manifest(t.digest, await this.d.meta.getLink(key, t.digest));
      if (parsed) t.platforms = parsed.manifests.flatMap((m) => (m.platform ? [platformName(m.platform)] : []));
    }
    return summary;
  }

  async tag(key: string, tag: string): Promise<{ digest: Digest; origin: 'local' | 'upstream' } | undefined> {
    const t = await this.d.meta.getTag(key, tag);
    return t && { digest: t.digest, origin: t.origin };
  }

  async image(key: string, digest: Digest): Promise<ImageDetail | undefined> {
    const link = await this.d.meta.getLink(key, digest);
    if (!link || link.kind !== 'manifest') return undefined;
    const parsed = await this.manifest(digest, link);
    if (!parsed) return undefined;
    const out: ImageDetail = {
      repository: this.d.namespaces.displayName(key),
      digest,
      mediaType: link.mediaType ?? parsed.mediaType,
      size: link.size,
      origin: link.origin,
      tags: (await this.d.meta.tagsOf(key, digest)).sort(),
      referrers: (await this.d.meta.referrers(key, digest)).map((r) => ({
        digest: r.digest,
        mediaType: r.link.mediaType ?? '',
        ...(r.link.artifactType !== undefined ? { artifactType: r.link.artifactType } : {}),
        size: r.link.size,
      })),
    };
    if (parsed.annotations) out.annotations = parsed.annotations;
    if (parsed.subject) out.subject = parsed.subject;
    if (isIndexType(parsed.mediaType)) {
      out.manifests = [];
      for (const m of parsed.manifests) {
        const child = await this.d.meta.getLink(key, m.digest);
        out.manifests.push({ digest: m.digest, mediaType: m.mediaType, size: m.size, ...(m.platform ? { platform: m.platform } : {}), cached: child?.kind === 'manifest' });
      }
      return out;
    }
    const [config, ...layers] = parsed.blobs;
    if (config) {
      const content = await this.config(key, config.digest, config.size);
      out.config = { digest: config.digest, mediaType: config.mediaType, size: config.size, ...(content ? { content } : {}) };
    }
    out.layers = layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size }));
    return out;
  }

  private async build(): Promise<RepositorySummary[]> {
    const out: RepositorySummary[] = [];
    let last: string | undefined;
    let i = 0;
    do {
      const page = await this.d.meta.listRepos(PAGE, last);
      for (const key of page.items) {
        const rec = await this.d.meta.getRepo(key);
        if (rec) out.push(await this.summarize(key, rec));
        await maybeYield(++i);
      }
      last = page.next;
    } while (last !== undefined);
    return out;
  }

  /**
   * A repository's tags with their sizes: each tag's manifest and what it reaches through links of this
   * repository (looked up per digest, each once); the repository's size is that of everything its tags reach.
   */
  private async summarize(key: string, rec: { local: boolean; mirrored: boolean }): Promise<RepositorySummary> {
    const links = new Map<Digest, LinkRecord | undefined>();
    const link = async (d: Digest) => {
      if (!links.has(d)) links.set(d, await this.d.meta.getLink(key, d));
      return links.get(d);
    };
    const tags: TagSummary[] = [];
    let last: string | undefined;
    do {
      const page = await this.d.meta.listTags(key, PAGE, last);
      for (const tag of page.items) {
        const t = await this.d.meta.getTag(key, tag);
        if (!t) continue;
        const summary: TagSummary = { tag, digest: t.digest, mediaType: t.mediaType, origin: t.origin, size: await treeSize(t.digest, t.size, link), updatedAt: t.checkedAt };
        const pulled = await this.lastAccess(t.digest);
        if (pulled !== undefined) summary.lastPulled = pulled;
        tags.push(summary);
      }
      last = page.next;
    } while (last !== undefined);
    let bytes = 0;
    let manifests = 0;
    let blobs = 0;
    for (const l of links.values()) {
      if (!l) continue;
      bytes += l.size;
      if (l.kind === 'manifest') manifests += 1;
      else blobs += 1;
    }
    const out: RepositorySummary = { name: this.d.namespaces.displayName(key), key, local: rec.local, mirrored: rec.mirrored, tags, bytes, manifests, blobs };
    const upstream = this.upstreamOf(key);
    if (upstream !== undefined) out.upstream = upstream;
    const updated = max(tags.map((t) => t.updatedAt));
    if (updated !== undefined) out.updatedAt = updated;
    const pulled = max(tags.flatMap((t) => (t.lastPulled !== undefined ? [t.lastPulled] : [])));
    if (pulled !== undefined) out.lastPulled = pulled;
    return out;
  }

  private upstreamOf(key: string): string | undefined {
    try {
      return this.d.namespaces.resolve(this.d.namespaces.displayName(key)).upstream;
    } catch {
      return undefined;
    }
  }

  private async lastAccess(digest: Digest): Promise<number | undefined> {
    const t = Math.max((await this.d.meta.lastAccess(digest)) ?? -Infinity, this.d.recentAccess?.(digest) ?? -Infinity);
    return Number.isFinite(t) ? t : undefined;
  }

  private async manifest(digest: Digest, link: LinkRecord | undefined) {
    if (!link || link.kind !== 'manifest') return undefined;
    const bytes = await this.readAll(digest, link.size);
    if (!bytes) return undefined;
    try {
      return parseManifest(bytes, link.mediaType);
    } catch {
      return undefined;
    }
  }

  private async config(key: string, digest: Digest, size: number): Promise<ImageConfigSummary | undefined> {
    if (size > MAX_CONFIG_BYTES || !(await this.d.meta.getLink(key, digest))) return undefined;
    const bytes = await this.readAll(digest, size);
    if (!bytes) return undefined;
    try {
      return summarizeConfig(JSON.parse(bytes.toString('utf8')));
    } catch {
      return undefined;
    }
  }

  private async readAll(digest: Digest, limit: number): Promise<Buffer | undefined> {
    const stream = await this.d.store.read(digest);
    if (!stream) return undefined;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of stream as AsyncIterable<Buffer>) {
      n += c.length;
      if (n > limit) {
        stream.destroy();
        return undefined;
      }
      chunks.push(c);
    }
    return Buffer.concat(chunks);
  }
}

export function platformName(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== '').join('/');
}

/** The size of a manifest and of everything it reaches through links of the repository (each digest once). */
async function treeSize(root: Digest, rootSize: number, link: (d: Digest) => Promise<LinkRecord | undefined>): Promise<number> {
  const seen = new Set<Digest>();
  const todo = [root];
  let size = 0;
  for (let d = todo.pop(); d !== undefined; d = todo.pop()) {
    if (seen.has(d)) continue;
    seen.add(d);
    const l = await link(d);
    if (!l) {
      if (d === root) size += rootSize;
      continue;
    }
    size += l.size;
    for (const r of l.refs ?? []) if (!seen.has(r)) todo.push(r);
  }
  return size;
}

function max(values: number[]): number | undefined {
  return values.length === 0 ? undefined : values.reduce((a, b) => (b > a ? b : a));
}

const strings = (v: unknown): string[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined);
const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The fields of an image config the UI shows; anything of the wrong type is left out. */
export function summarizeConfig(body: unknown): ImageConfigSummary {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const c = (typeof b.config === 'object' && b.config !== null ? b.config : {}) as Record<string, unknown>;
  const out: ImageConfigSummary = {};
  const set = <K extends keyof ImageConfigSummary>(k: K, v: ImageConfigSummary[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('created', text(b.created));
  set('os', text(b.os));
  set('architecture', text(b.architecture));
  set('variant', text(b.variant));
  set('entrypoint', strings(c.Entrypoint));
  set('cmd', strings(c.Cmd));
  set('env', strings(c.Env));
  set('workingDir', text(c.WorkingDir));
  set('user', text(c.User));
  if (typeof c.Labels === 'object' && c.Labels !== null) {
    set('labels', Object.fromEntries(Object.entries(c.Labels as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string')));
  }
  if (Array.isArray(b.history)) {
    set(
      'history',
      b.history.filter((h): h is Record<string, unknown> => typeof h === 'object' && h !== null).map((h) => ({
        ...(text(h.created) !== undefined ? { created: text(h.created) } : {}),
        ...(text(h.created_by) !== undefined ? { createdBy: text(h.created_by) } : {}),
        ...(h.empty_layer === true ? { emptyLayer: true } : {}),
        ...(text(h.comment) !== undefined ? { comment: text(h.comment) } : {}),
      })),
    );
  }
  return out;
}
