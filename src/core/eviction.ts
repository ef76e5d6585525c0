import type { Digest } from '../oci/index.js';
import type { Logger, Metrics } from '../observability/types.js';
import type { BlobStore, MetadataStore } from '../store/types.js';
import type { Removal } from './events.js';
import { closure, maybeYield, scanLinks, type EvictionResult, type LinkGraph, type SizeReport } from './lifecycle-types.js';

export interface EvictorDeps {
  store: BlobStore;
  meta: MetadataStore;
  now: () => number;
  logger: Logger;
  metrics: Metrics;
  /** `cache.maxSize` in bytes; 0 or Infinity disables eviction (sizes are still reported). */
  maxSize: number;
  /** fractions of maxSize: eviction starts above high × maxSize and stops at or below low × maxSize */
  highWatermark: number;
  lowWatermark: number;
  /** tag freshness (ms) of the upstream behind a repository key */
  freshnessOf: (repoKey: string) => number;
  /** being read or written right now */
  isBusy: (digest: Digest) => boolean;
  /** access times not yet flushed to the metadata store (AccessTracker.peek) */
  recentAccess?: (digest: Digest) => number | undefined;
  /**
   * Replicas sharing one store: a pass runs only on the replica that gets this lease (undefined = another
   * replica holds it). Absent on a single node.
   */
  lease?: () => Promise<{ release(): Promise<void> } | undefined>;
  /** what an evicted digest was removed from (its tags and links), for `evict` webhooks */
  onRemoved?: (removed: Removal[]) => void;
}

interface Inventory {
  sizes: Map<Digest, number>;
  graph: LinkGraph;
  local: Set<Digest>;
  /** store digests counted against maxSize */
  mirrored: Set<Digest>;
  report: SizeReport;
}

/**
 * Keeps mirrored content under `cache.maxSize`: least recently used mirrored blobs and manifests go first,
 * whatever their tags' freshness, so the bound holds through a burst of pulls. Only local pushes (and all
 * they reference) and digests being read or written right now are never removed. A fresh tag's record
 * outlives its evicted manifest: the next pull fetches the manifest by digest without asking for the tag.
 * Runs one pass at a time in the background.
 */
export class Evictor {
  private running: Promise<EvictionResult> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private active = false;

  constructor(private readonly d: EvictorDeps) {
    if (!(d.lowWatermark > 0 && d.lowWatermark <= d.highWatermark && d.highWatermark <= 1)) {
      throw new Error(`eviction: watermarks must satisfy 0 < low (${d.lowWatermark}) <= high (${d.highWatermark}) <= 1`);
    }
  }

  async sizeReport(): Promise<SizeReport> {
    return (await this.inventory()).report;
  }

  /** One eviction pass; concurrent callers share the pass in progress. */
  runOnce(): Promise<EvictionResult> {
    if (!this.running) {
      this.running = this.leasedPass().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  /** Runs a pass every intervalMs (measured from the end of the previous one, so passes never overlap). */
  start(intervalMs: number): void {
    if (this.active) return;
    this.active = true;
    const schedule = () => {
      this.timer = setTimeout(() => {
        this.runOnce()
          .catch((e: unknown) => this.d.logger.error({ err: e }, 'cache eviction failed'))
          .finally(() => {
            if (this.active) schedule();
          });
      }, intervalMs);
      this.timer.unref();
    };
    schedule();
  }

  /** Stops the loop and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.active = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private enabled(): boolean {
    return Number.isFinite(this.d.maxSize) && this.d.maxSize > 0;
  }

  private async leasedPass(): Promise<EvictionResult> {
    if (!this.d.lease) return this.pass();
    const lease = await this.d.lease();
    if (!lease) return { evicted: [], freedBytes: 0 };
    try {
      return await this.pass();
    } finally {
      await lease.release().catch(() => undefined);
    }
  }

  private async pass(): Promise<EvictionResult> {
    const inv = await this.inventory();
    let { mirroredBytes, mirroredBlobs } = inv.report;
    const high = this.d.maxSize * this.d.highWatermark;
    const low = this.d.maxSize * this.d.lowWatermark;
    const evicted: Digest[] = [];
    let freedBytes = 0;
    if (this.enabled() && mirroredBytes > high) {
      const candidates = await this.candidates(inv);
      for (const [i, digest] of candidates.entries()) {
        if (mirroredBytes <= low) break;
        await maybeYield(i);
        const size = inv.sizes.get(digest) ?? 0;
        const outcome = await this.evict(digest).catch((e: unknown) => {
          this.d.logger.warn({ err: e, digest }, 'cache eviction: could not evict');
          return 'kept' as const;
        });
        if (outcome === 'kept') continue;
        evicted.push(digest);
        mirroredBytes -= size;
        mirroredBlobs -= 1;
        if (outcome === 'removed') freedBytes += size;
      }
      this.d.metrics.evicted(evicted.length);
      const log = { evicted: evicted.length, freedBytes, mirroredBytes, lowMark: Math.floor(low), maxSize: this.d.maxSize };
      if (mirroredBytes > low) this.d.logger.warn(log, 'cache eviction: still above the low mark (the rest is protected or busy)');
      else this.d.logger.info(log, 'cache eviction');
    }
    this.d.metrics.cacheSize(mirroredBytes, mirroredBlobs);
    return { evicted, freedBytes };
  }

  private async inventory(): Promise<Inventory> {
    const sizes = new Map<Digest, number>();
    for await (const { digest, size } of this.d.store.list()) {
      sizes.set(digest, size);
      await maybeYield(sizes.size);
    }
    const graph = await scanLinks(this.d.meta);
    const localRoots: Digest[] = [];
    for (const [digest, node] of graph) if (node.local) localRoots.push(digest);
    const local = closure(graph, localRoots);
    const referenced = closure(graph, graph.keys());
    const mirrored = new Set<Digest>();
    const report: SizeReport = { mirroredBytes: 0, mirroredBlobs: 0, localBytes: 0, localBlobs: 0, unlinkedBytes: 0, unlinkedBlobs: 0, blobs: sizes.size };
    for (const [digest, size] of sizes) {
      if (local.has(digest)) {
        report.localBytes += size;
        report.localBlobs += 1;
      } else if (referenced.has(digest)) {
        mirrored.add(digest);
        report.mirroredBytes += size;
        report.mirroredBlobs += 1;
      } else {
        report.unlinkedBytes += size;
        report.unlinkedBlobs += 1;
      }
    }
    return { sizes, graph, local, mirrored, report };
  }

  /** Evictable mirrored digests, least recently used first. */
  private async candidates(inv: Inventory): Promise<Digest[]> {
    const out: Array<{ digest: Digest; used: number }> = [];
    for (const digest of inv.mirrored) {
      if (this.d.isBusy(digest)) continue;
      out.push({ digest, used: await this.lastUse(digest, inv.graph) });
      await maybeYield(out.length);
    }
    out.sort((a, b) => a.used - b.used || (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
    return out.map((c) => c.digest);
  }

  private async lastUse(digest: Digest, graph: LinkGraph): Promise<number> {
    const stored = await this.d.meta.lastAccess(digest);
    const recent = this.d.recentAccess?.(digest);
    const t = Math.max(stored ?? -Infinity, recent ?? -Infinity);
    // Never-read content ranks by when it arrived; referenced-but-unlinked blobs (unservable) go first.
    return Number.isFinite(t) ? t : (graph.get(digest)?.linkedAt ?? 0);
  }

  /**
   * Removes one digest: its stale tags, its upstream links, its access time, then the file. Re-checks what
   * may have changed since the scan (a push linking it locally, a read starting). Tags still within their
   * freshness window keep their record (the digest they name is still the upstream's answer).
   */
  private async evict(digest: Digest): Promise<'removed' | 'gone' | 'kept'> {
    const { meta, store } = this.d;
    if (this.d.isBusy(digest)) return 'kept';
    const links = await meta.linksOf(digest);
    if (links.some((l) => l.link.origin === 'local')) return 'kept';
    const now = this.d.now();
    const tags: Array<{ repo: string; tag: string }> = [];
    for (const { repo, link } of links) {
      if (link.kind !== 'manifest') continue;
      for (const tag of await meta.tagsOf(repo, digest)) {
        const rec = await meta.getTag(repo, tag);
        if (!rec || rec.digest !== digest) continue;
        if (rec.origin === 'local') return 'kept';
        if (rec.checkedAt + this.d.freshnessOf(repo) <= now) tags.push({ repo, tag });
      }
    }
    for (const { repo, tag } of tags) await meta.deleteTag(repo, tag);
    for (const { repo } of links) await meta.unlink(repo, digest);
    await meta.forgetAccess(digest);
    const outcome = (await store.delete(digest)) ? 'removed' : 'gone';
    this.d.onRemoved?.([
      ...tags.map(({ repo, tag }): Removal => ({ key: repo, target: { kind: 'manifest', digest, tag } })),
      ...links.map(({ repo, link }): Removal => ({ key: repo, target: { kind: link.kind, digest, size: link.size, ...(link.mediaType ? { mediaType: link.mediaType } : {}) } })),
    ]);
    return outcome;
  }
}
