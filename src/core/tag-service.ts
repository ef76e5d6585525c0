import { ErrorCode, RegistryError, isRegistryError } from '../oci/index.js';
import type { Page } from '../store/types.js';
import type { CoreDeps } from './deps.js';
import type { PendingWrites } from './pending-writes.js';
import type { RepoAccess } from './repo-access.js';
import type { CatalogService, RepoRef, TagService } from './types.js';
import { UpstreamTags, mergeSorted } from './upstream-tags.js';

/** Spec paging over a sorted list: entries after `last`, at most `n`. */
export function page(sorted: readonly string[], n: number | undefined, last: string | undefined): Page<string> {
  let from = 0;
  if (last !== undefined) {
    // binary search for the first entry > last
    let hi = sorted.length;
    while (from < hi) {
      const mid = (from + hi) >>> 1;
      if ((sorted[mid] as string) <= last) from = mid + 1;
      else hi = mid;
    }
  }
  if (n === undefined || sorted.length - from <= n) return { items: sorted.slice(from) };
  const items = sorted.slice(from, from + n);
  return { items, next: items[items.length - 1] };
}

export class Tags implements TagService {
  private readonly upstreamTags: UpstreamTags;

  constructor(
    private readonly d: CoreDeps,
    private readonly access: RepoAccess,
  ) {
    this.upstreamTags = new UpstreamTags({ bounds: d.policy.tagLists, logger: d.logger, now: d.now });
  }

  /** Local tags, plus the upstream's for a mirrored repository (the union; local ones when it is down). */
  async list(repo: RepoRef, n: number | undefined, last: string | undefined): Promise<Page<string>> {
    const rec = await this.access.record(repo);
    const known = (await this.d.meta.listTags(repo.key)).items;
    const target = await this.access.mirror(repo, rec);
    let names: readonly string[] = [...known].sort();
    if (target) {
      try {
        const upstream = await this.upstreamTags.list(repo, target);
        names = names.length === 0 ? upstream : mergeSorted(upstream, names);
      } catch (e) {
        if (isRegistryError(e) && (e.code === ErrorCode.NAME_UNKNOWN || e.code === ErrorCode.MANIFEST_UNKNOWN) && known.length === 0) {
          throw new RegistryError(ErrorCode.NAME_UNKNOWN, undefined, { detail: { name: this.d.namespaces.displayName(repo.key) } });
        }
        this.d.logger.warn({ upstream: repo.upstream, err: (e as Error).message }, 'upstream tag list unavailable; listing cached tags');
      }
    } else if (!rec) {
      throw new RegistryError(ErrorCode.NAME_UNKNOWN, undefined, { detail: { name: this.d.namespaces.displayName(repo.key) } });
    }
    return page(names, n, last);
  }
}

export class Catalog implements CatalogService {
  constructor(
    private readonly d: CoreDeps,
    private readonly pending: PendingWrites,
  ) {}

  async list(n: number | undefined, last: string | undefined): Promise<Page<string>> {
    // A repository whose first manifest was just served may still be being recorded.
    await this.pending.settled();
    const keys = (await this.d.meta.listRepos()).items;
    const names = keys.map((k) => this.d.namespaces.displayName(k)).sort();
    return page(names, n, last);
  }
}
