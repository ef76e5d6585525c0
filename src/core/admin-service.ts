import { Digester, ErrorCode, RegistryError, algorithmOf, parseDigest, parseName, parseTag, type Digest, type Reference } from '../oci/index.js';
import type { Logger } from '../observability/types.js';
import type { BlobStore, LinkRecord, MetadataStore, Origin } from '../store/types.js';
import type { RateLimitReading, Upstream } from '../upstream/types.js';
import { collectGarbage, listBlobs, type TempSweeper } from './gc.js';
import { PhaseProgress, noProgress, type OnProgress } from './progress.js';
import { closure, maybeYield, scanLinks, type EvictionResult, type GcReport, type LinkGraph, type SizeReport } from './lifecycle-types.js';
import { removalEvents, type Removal } from './events.js';
import type { EventSink, Namespaces } from './types.js';

export interface AdminDeps {
  store: BlobStore & TempSweeper;
  meta: MetadataStore;
  namespaces: Namespaces;
  upstreams: ReadonlyMap<string, Pick<Upstream, 'name' | 'rateLimit'>>;
  /** the evictor (size report, on-demand pass); absent offline, where only ls/gc/verify run */
  evictor?: { sizeReport(): Promise<SizeReport>; runOnce(): Promise<EvictionResult> };
  cache: { maxSize?: number; highWatermark: number; lowWatermark: number };
  uploadExpiryMs: number;
  /** gc leaves blobs and temp files younger than this alone, unless the caller asks for less */
  gcGraceMs: number;
  isBusy: (digest: Digest) => boolean;
  recentAccess?: (digest: Digest) => number | undefined;
  now: () => number;
  logger: Logger;
  /** webhooks: a `purge` event per tag and link removed (absent offline) */
  events?: EventSink;
}

export interface AdminStats {
  cache: SizeReport & { maxSize?: number; highWatermark: number; lowWatermark: number };
  upstreams: Array<{ name: string; rateLimit?: RateLimitReading }>;
  repositories: { total: number; local: number; mirrored: number };
  tags: number;
  uploads: number;
}

export interface TagInfo {
  tag: string;
  digest: Digest;
  mediaType: string;
  origin: Origin;
  /** when the upstream last confirmed it (or when it was pushed), ms since epoch */
  checkedAt: number;
}

export interface RepositoryInfo {
  /** the name clients use */
  name: string;
  /** canonical key */
  key: string;
  local: boolean;
  mirrored: boolean;
  tags: TagInfo[];
  manifests: number;
  blobs: number;
  /** sum of the sizes of everything linked to the repository */
  bytes: number;
  /** latest access of anything linked to it (ms since epoch), when known */
  lastAccess?: number;
}

export interface PurgeReport {
  repository: string;
  tags: string[];
  /** digests no longer linked to the repository */
  unlinked: Digest[];
  /** blobs removed from disk (linked nowhere else) */
  removed: Array<{ digest: Digest; size: number }>;
  freedBytes: number;
}

export interface VerifyReport {
  checked: number;
  bytes: number;
  corrupt: Array<{ digest: Digest; actual: Digest; size: number; repositories: string[]; quarantined: boolean }>;
  /** busy while verifying: left for the next run */
  skipped: Digest[];
}

/** `name`, `name:tag` or `name@digest`; a bare name means `latest`, as docker reads it. */
export function parseImageRef(ref: string): { name: string; reference: Reference } {
  const at = ref.indexOf('@');
  if (at >= 0) return { name: parseName(ref.slice(0, at)), reference: { kind: 'digest', digest: parseDigest(ref.slice(at + 1)) } };
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { name: parseName(ref.slice(0, colon)), reference: { kind: 'tag', tag: parseTag(ref.slice(colon + 1)) } };
  return { name: parseName(ref), reference: { kind: 'tag', tag: 'latest' } };
}

const PAGE = 1000;

/** Operator actions over the stores: ls, stats, gc, purge, verify, evict. Shared by the admin API and the offline CLI. */
export class AdminService {
  constructor(private readonly d: AdminDeps) {}

  async stats(): Promise<AdminStats> {
    const report = this.d.evictor ? await this.d.evictor.sizeReport() : await this.plainSizeReport();
    const repos = { total: 0, local: 0, mirrored: 0 };
    let tags = 0;
    for await (const key of this.repoKeys()) {
      const rec = await this.d.meta.getRepo(key);
      repos.total += 1;
      if (rec?.local) repos.local += 1;
      if (rec?.mirrored) repos.mirrored += 1;
      tags += (await this.d.meta.listTags(key)).items.length;
    }
    let uploads = 0;
    for await (const _ of this.d.meta.listUploads()) uploads += 1;
    const upstreams = [...this.d.upstreams.values()].map((u) => {
      const rateLimit = u.rateLimit();
      return rateLimit ? { name: u.name, rateLimit } : { name: u.name };
    });
    return { cache: { ...report, ...this.d.cache }, upstreams, repositories: repos, tags, uploads };
  }

  /** Every repository, or the one `name` resolves to. */
  async repositories(name?: string): Promise<RepositoryInfo[]> {
    if (name !== undefined) {
      const key = this.d.namespaces.resolve(parseName(name)).key;
      const info = await this.repository(key);
      if (!info) throw new RegistryError(ErrorCode.NAME_UNKNOWN, undefined, { detail: { name } });
      return [info];
    }
    const out: RepositoryInfo[] = [];
    for await (const key of this.repoKeys()) {
      const info = await this.repository(key);
      if (info) out.push(info);
    }
    return out;
  }

  gc(opts: { dryRun: boolean; graceMs?: number; onProgress?: OnProgress }): Promise<GcReport> {
    return collectGarbage({
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      store: this.d.store,
      meta: this.d.meta,
      now: this.d.now,
      uploadExpiryMs: this.d.uploadExpiryMs,
      tempGraceMs: opts.graceMs ?? this.d.gcGraceMs,
      dryRun: opts.dryRun,
    });
  }

  async evict(): Promise<EvictionResult> {
    if (!this.d.evictor) throw new RegistryError(ErrorCode.UNSUPPORTED, 'eviction runs only inside a serving wharf');
    return this.d.evictor.runOnce();
  }

  /** Which of these digests are committed on disk. */
  async cached(digests: Digest[]): Promise<Digest[]> {
    const out: Digest[] = [];
    for (const d of digests) if (await this.d.store.stat(d)) out.push(d);
    return out;
  }

  /**
   * Drops a mirrored image: the tag (or every tag on the digest), the manifest's links in the repository
   * with what only it references there (an index's children and their blobs), and the blobs linked nowhere
   * else any more. Local images are refused: they exist nowhere else.
   */
  async purge(ref: string): Promise<PurgeReport> {
    const { name, reference } = parseImageRef(ref);
    const repo = this.d.namespaces.resolve(name).key;
    const { meta } = this.d;
    let top: Digest;
    if (reference.kind === 'tag') {
      const rec = await meta.getTag(repo, reference.tag);
      if (!rec) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, `${ref} is not cached`, { detail: { ref } });
      if (rec.origin === 'local') throw localRefused(ref);
      top = rec.digest;
    } else {
      top = reference.digest;
    }
    const topLink = await meta.getLink(repo, top);
    if (!topLink || topLink.kind !== 'manifest') {
      // A tag whose manifest is gone is still worth dropping; a digest that is not here is not.
      if (reference.kind === 'digest') throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, `${ref} is not cached`, { detail: { ref } });
    } else if (topLink.origin === 'local') {
      throw localRefused(ref);
    }

    // Another tag on the same manifest keeps it: purging `app:1` must not break `app:stable`.
    const tags: string[] = [];
    if (reference.kind === 'tag') {
      await meta.deleteTag(repo, reference.tag);
      tags.push(reference.tag);
      if ((await meta.tagsOf(repo, top)).length > 0) {
        await this.announcePurge(repo, tags, []);
        return { repository: repo, tags, unlinked: [], removed: [], freedBytes: 0 };
      }
    }

    const links = new Map<Digest, LinkRecord>();
    for await (const l of this.repoLinks(repo)) links.set(l.digest, l.link);
    const graph: LinkGraph = new Map();
    for (const [d, l] of links) {
      graph.set(d, { local: l.origin === 'local', manifest: l.kind === 'manifest', upstreamRepos: [], refs: l.refs ?? [], linkedAt: l.linkedAt });
    }
    const reach = (roots: Iterable<Digest>) => closure(graph, roots);
    const doomed = reach([top]);
    const keep = reach([...links].filter(([d, l]) => l.kind === 'manifest' && !doomed.has(d)).map(([d]) => d));
    const unlinked: Digest[] = [];
    for (const digest of doomed) {
      const link = links.get(digest);
      if (!link || link.origin === 'local' || keep.has(digest)) continue;
      for (const tag of await meta.tagsOf(repo, digest)) {
        const rec = await meta.getTag(repo, tag);
        if (rec?.origin === 'local') continue;
        await meta.deleteTag(repo, tag);
        if (!tags.includes(tag)) tags.push(tag);
      }
      await meta.unlink(repo, digest);
      unlinked.push(digest);
    }

    const all = await scanLinks(meta);
    const referenced = closure(all, all.keys());
    const removed: PurgeReport['removed'] = [];
    let freedBytes = 0;
    for (const digest of unlinked) {
      if (referenced.has(digest) || this.d.isBusy(digest)) continue;
      if ((await meta.linksOf(digest)).length > 0) continue;
      const st = await this.d.store.stat(digest);
      await meta.forgetAccess(digest);
      if (st && (await this.d.store.delete(digest))) {
        removed.push({ digest, size: st.size });
        freedBytes += st.size;
      }
    }
    this.d.logger.info({ repository: repo, tags, unlinked: unlinked.length, removed: removed.length, freedBytes }, 'purged');
    await this.announcePurge(repo, tags, unlinked.map((digest) => ({ digest, link: links.get(digest)! })));
    return { repository: repo, tags, unlinked, removed, freedBytes };
  }

  /** `purge` events, queued before the answer as every event a request causes: one per tag, one per link removed. */
  private async announcePurge(repo: string, tags: string[], unlinked: Array<{ digest: Digest; link: LinkRecord }>): Promise<void> {
    const events = removalEvents(this.d.events, this.d.namespaces, 'purge', [
      ...tags.map((tag): Removal => ({ key: repo, target: { kind: 'manifest', tag } })),
      ...unlinked.map(({ digest, link: l }): Removal => ({ key: repo, target: { kind: l.kind, digest, size: l.size, ...(l.mediaType ? { mediaType: l.mediaType } : {}) } })),
    ]);
    if (events.length > 0) await this.d.events!.emit(events);
  }

  /**
   * Re-hashes every committed blob. A mismatch is moved to quarantine (or deleted when the store cannot
   * quarantine) and unlinked everywhere, so the next pull fetches it again instead of serving bad bytes.
   */
  async verify(opts: { onProgress?: OnProgress } = {}): Promise<VerifyReport> {
    const report: VerifyReport = { checked: 0, bytes: 0, corrupt: [], skipped: [] };
    const on = opts.onProgress ?? noProgress;
    // Listed first so progress has a total: bytes to hash is what the time goes by.
    const blobs = await listBlobs(this.d.store, on);
    const progress = new PhaseProgress(on, 'hashing', blobs.length, blobs.reduce((n, b) => n + b.size, 0));
    for (const { digest, size } of blobs) {
      await this.verifyOne(digest, size, report, progress);
      progress.step(size);
    }
    return report;
  }

  private async verifyOne(digest: Digest, size: number, report: VerifyReport, progress: PhaseProgress): Promise<void> {
    if (this.d.isBusy(digest)) {
      report.skipped.push(digest);
      return;
    }
    const actual = await this.hash(digest, progress);
    if (actual === undefined) return; // removed meanwhile
    report.checked += 1;
    report.bytes += size;
    if (actual === digest) return;
    const repositories: string[] = [];
    for (const { repo } of await this.d.meta.linksOf(digest)) {
      for (const tag of await this.d.meta.tagsOf(repo, digest)) await this.d.meta.deleteTag(repo, tag);
      await this.d.meta.unlink(repo, digest);
      repositories.push(repo);
    }
    await this.d.meta.forgetAccess(digest);
    const quarantined = this.d.store.quarantine ? await this.d.store.quarantine(digest) : false;
    if (!quarantined) await this.d.store.delete(digest);
    this.d.logger.error({ digest, actual, repositories, quarantined }, 'stored blob does not match its digest; removed from service');
    report.corrupt.push({ digest, actual, size, repositories, quarantined });
  }

  private async hash(digest: Digest, progress: PhaseProgress): Promise<Digest | undefined> {
    const stream = await this.d.store.read(digest);
    if (!stream) return undefined;
    const h = new Digester(algorithmOf(digest));
    let i = 0;
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      h.update(chunk);
      progress.addBytes(chunk.length);
      await maybeYield(++i);
    }
    return h.peek();
  }

  private async repository(key: string): Promise<RepositoryInfo | undefined> {
    const rec = await this.d.meta.getRepo(key);
    if (!rec) return undefined;
    const tags: TagInfo[] = [];
    let last: string | undefined;
    do {
      const page = await this.d.meta.listTags(key, PAGE, last);
      for (const tag of page.items) {
        const t = await this.d.meta.getTag(key, tag);
        if (t) tags.push({ tag, digest: t.digest, mediaType: t.mediaType, origin: t.origin, checkedAt: t.checkedAt });
      }
      last = page.next;
    } while (last !== undefined);
    let manifests = 0;
    let blobs = 0;
    let bytes = 0;
    let lastAccess: number | undefined;
    for await (const { digest, link } of this.repoLinks(key)) {
      if (link.kind === 'manifest') manifests += 1;
      else blobs += 1;
      bytes += link.size;
      const t = Math.max((await this.d.meta.lastAccess(digest)) ?? -Infinity, this.d.recentAccess?.(digest) ?? -Infinity);
      if (Number.isFinite(t) && (lastAccess === undefined || t > lastAccess)) lastAccess = t;
    }
    const info: RepositoryInfo = { name: this.d.namespaces.displayName(key), key, local: rec.local, mirrored: rec.mirrored, tags, manifests, blobs, bytes };
    if (lastAccess !== undefined) info.lastAccess = lastAccess;
    return info;
  }

  private async *repoKeys(): AsyncIterable<string> {
    let last: string | undefined;
    do {
      const page = await this.d.meta.listRepos(PAGE, last);
      yield* page.items;
      last = page.next;
    } while (last !== undefined);
  }

  /** Links of one repository: the link index has no per-repository scan, so this filters the full one. */
  private async *repoLinks(repo: string): AsyncIterable<{ digest: Digest; link: LinkRecord }> {
    for await (const l of this.d.meta.allLinks()) if (l.repo === repo) yield { digest: l.digest, link: l.link };
  }

  private async plainSizeReport(): Promise<SizeReport> {
    const graph = await scanLinks(this.d.meta);
    const localRoots = [...graph].filter(([, n]) => n.local).map(([d]) => d);
    const local = closure(graph, localRoots);
    const referenced = closure(graph, graph.keys());
    const r: SizeReport = { mirroredBytes: 0, mirroredBlobs: 0, localBytes: 0, localBlobs: 0, unlinkedBytes: 0, unlinkedBlobs: 0, blobs: 0 };
    for await (const { digest, size } of this.d.store.list()) {
      r.blobs += 1;
      if (local.has(digest)) {
        r.localBytes += size;
        r.localBlobs += 1;
      } else if (referenced.has(digest)) {
        r.mirroredBytes += size;
        r.mirroredBlobs += 1;
      } else {
        r.unlinkedBytes += size;
        r.unlinkedBlobs += 1;
      }
    }
    return r;
  }
}

function localRefused(ref: string): RegistryError {
  return new RegistryError(ErrorCode.DENIED, `${ref} was pushed here (local); purge removes mirrored images only`, { detail: { ref } });
}
