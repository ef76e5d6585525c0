import { setImmediate as nextTurn } from 'node:timers/promises';
import { LRUCache } from 'lru-cache';
import { ErrorCode, isRegistryError } from '../oci/index.js';
import type { Logger } from '../observability/types.js';
import type { MirrorTarget } from './repo-access.js';
import { SingleFlight } from './single-flight.js';
import type { RepoRef } from './types.js';

export interface TagListBounds {
  /** pages (`Link: rel="next"`) read at most */
  maxPages: number;
  /** tags kept at most */
  maxTags: number;
}

export interface UpstreamTagsDeps {
  bounds: TagListBounds;
  logger: Logger;
  now: () => number;
}

interface Cached {
  /** sorted, without duplicates */
  names: string[];
  fetchedAt: number;
}

/**
 * Upstream tag lists: read page by page within bounds (`limits.maxUpstreamTagPages`, `limits.maxUpstreamTags`;
 * past either the list is cut and a warning logged), one read at a time per repository however many clients
 * ask, and kept for the upstream's tag freshness window so a listing within it costs no upstream request.
 */
export class UpstreamTags {
  private readonly flights = new SingleFlight<string[]>();
  private readonly cache: LRUCache<string, Cached>;

  constructor(private readonly d: UpstreamTagsDeps) {
    // Counted in tags, so a few huge lists cannot hold more memory than a handful of full-size ones.
    this.cache = new LRUCache<string, Cached>({ maxSize: 4 * d.bounds.maxTags + 1000, sizeCalculation: (v) => v.names.length + 1 });
  }

  /**
   * The upstream's tags, sorted. Shared by every waiting client, so no client's signal stops the read. An
   * upstream that fails (down, slow, 429) gets the last list read served, however old; one that says the
   * repository is gone does not.
   */
  async list(repo: RepoRef, target: MirrorTarget): Promise<string[]> {
    const hit = this.cache.get(repo.key);
    if (hit && this.d.now() - hit.fetchedAt < target.policy.tagFreshness) return hit.names;
    try {
      return await this.flights.run(repo.key, () => this.fetch(repo, target)).promise;
    } catch (e) {
      if (!hit || (isRegistryError(e) && (e.code === ErrorCode.NAME_UNKNOWN || e.code === ErrorCode.MANIFEST_UNKNOWN))) throw e;
      this.d.logger.warn({ upstream: repo.upstream, repository: repo.path, err: (e as Error).message }, 'upstream tag list unavailable; listing the last one read');
      return hit.names;
    }
  }

  private async fetch(repo: RepoRef, target: MirrorTarget): Promise<string[]> {
    const { maxPages, maxTags } = this.d.bounds;
    const fetchedAt = this.d.now();
    const seen = new Set<string>();
    let pages = 0;
    let cut: 'pages' | 'tags' | undefined;
    for await (const page of target.upstream.tagPages(repo.path)) {
      pages++;
      const room = maxTags - seen.size;
      for (let i = 0; i < page.tags.length && seen.size < maxTags; i++) seen.add(page.tags[i] as string);
      if (seen.size >= maxTags && (page.tags.length > room || page.more)) cut = 'tags';
      else if (pages >= maxPages && page.more) cut = 'pages';
      if (cut) break;
      // A page can hold many thousands of names: let other requests run between them.
      await nextTurn();
    }
    if (cut) {
      this.d.logger.warn({ upstream: repo.upstream, repository: repo.path, pages, tags: seen.size, bound: cut === 'pages' ? 'limits.maxUpstreamTagPages' : 'limits.maxUpstreamTags' }, 'upstream tag list cut at its bound');
    }
    const names = [...seen].sort();
    this.cache.set(repo.key, { names, fetchedAt });
    return names;
  }
}

/** Both sorted lists as one, sorted, without duplicates: O(a + b). */
export function mergeSorted(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    let next: string;
    if (y === undefined || (x !== undefined && x < y)) next = a[i++] as string;
    else if (x === undefined || y < x) next = b[j++] as string;
    else {
      next = x;
      i++;
      j++;
    }
    if (out.length === 0 || out[out.length - 1] !== next) out.push(next);
  }
  return out;
}
