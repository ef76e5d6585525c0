import type { Descriptor, Digest } from '../oci/index.js';
import type { Logger, Metrics } from '../observability/types.js';
import type { RepoRef } from './types.js';

/**
 * Gets one blob of `repo` into the cache without a client: 'present' when it is there or already on its
 * way (here or on another replica), 'fetched' once a download it started has committed; rejects when
 * that download failed.
 */
export type FetchAhead = (repo: RepoRef, digest: Digest) => Promise<'fetched' | 'present'>;

/** Blobs waiting per upstream beyond which new ones are dropped (a manifest may list thousands). */
const MAX_QUEUED = 10_000;

/** Layers the registry never holds: their bytes live at URLs the manifest names. */
function nonDistributable(mediaType: string): boolean {
  return mediaType.includes('foreign') || mediaType.includes('nondistributable');
}

interface Lane {
  queue: Array<{ repo: RepoRef; digest: Digest }>;
  /** digests queued or being fetched, so a blob shared by several manifests is fetched once */
  known: Set<Digest>;
  active: number;
}

/**
 * Layer prefetch. A manifest that has just come from the upstream names the blobs its client will ask
 * for next, and clients ask one at a time (skopeo) or three at a time (Docker, containerd), each ask a
 * round trip through wharf to the upstream. Fetching them as soon as the manifest is known, in the
 * manifest's order and a few at a time per upstream, keeps the upstream link busy between those asks;
 * a client then joins a download already running (or finds the blob cached), and so do the other nodes
 * of a rollout.
 *
 * The limit is per upstream, not per manifest, so prefetch never takes all of an upstream's fetch slots
 * (`maxConcurrentFetches`) from clients' own misses.
 */
export class Prefetcher {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    private readonly fetchAhead: FetchAhead,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /** Queues the blobs of `manifest` (image config and layers) for `repo`'s upstream, `limit` at once. */
  enqueue(repo: RepoRef, blobs: readonly Descriptor[], limit: number): void {
    if (limit <= 0 || repo.upstream === undefined) return;
    const upstream = repo.upstream;
    let lane = this.lanes.get(upstream);
    if (!lane) {
      lane = { queue: [], known: new Set(), active: 0 };
      this.lanes.set(upstream, lane);
    }
    for (const b of blobs) {
      if (nonDistributable(b.mediaType) || lane.known.has(b.digest)) continue;
      if (lane.queue.length >= MAX_QUEUED) break;
      lane.known.add(b.digest);
      lane.queue.push({ repo, digest: b.digest });
    }
    this.pump(upstream, lane, limit);
  }

  private pump(upstream: string, lane: Lane, limit: number): void {
    while (lane.active < limit && lane.queue.length > 0) {
      const { repo, digest } = lane.queue.shift()!;
      lane.active++;
      this.fetchAhead(repo, digest)
        .then(
          (result) => this.metrics.prefetched(upstream, result),
          (e: unknown) => {
            this.metrics.prefetched(upstream, 'failed');
            this.logger.debug({ upstream, digest, err: (e as Error).message }, 'prefetch failed; a client asking for the blob fetches it again');
          },
        )
        .finally(() => {
          lane.active--;
          lane.known.delete(digest);
          if (lane.active === 0 && lane.queue.length === 0) this.lanes.delete(upstream);
          else this.pump(upstream, lane, limit);
        });
    }
  }
}
