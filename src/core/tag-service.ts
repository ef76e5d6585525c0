import { ErrorCode, RegistryError, isRegistryError } from '../oci/index.js';
import type { Page } from '../store/types.js';
import type { CoreDeps } from './deps.js';
import type { PendingWrites } from './pending-writes.js';
import type { RepoAccess } from './repo-access.js';
import type { CatalogService, RepoRef, TagService } from './types.js';

/** Spec paging over a sorted list: entries after `last`, at most `n`. */
export function page(sorted: string[], n: number | undefined, last: string | undefined): Page<string> {
  const from = last === undefined ? 0 : sorted.findIndex((t) => t > last);
  const rest = from < 0 ? [] : sorted.slice(from);
  if (n === undefined || rest.length <= n) return { items: rest };
  const items = rest.slice(0, n);
  return { items, next: items[items.length - 1] };
}

export class Tags implements TagService {
  constructor(
    private readonly d: CoreDeps,
    private readonly access: RepoAccess,
  ) {}

  /** Local tags, plus the upstream's for a mirrored repository (the union; local ones when it is down). */
  async list(repo: RepoRef, n: number | undefined, last: string | undefined, signal?: AbortSignal): Promise<Page<string>> {
    const rec = await this.access.record(repo);
    const known = (await this.d.meta.listTags(repo.key)).items;
    const target = await this.access.mirror(repo, rec);
    let names = known;
    if (target) {
      try {
        const upstream = await target.upstream.tags(repo.path, signal);
        names = [...new Set([...upstream, ...known])];
      } catch (e) {
        if (isRegistryError(e) && (e.code === ErrorCode.NAME_UNKNOWN || e.code === ErrorCode.MANIFEST_UNKNOWN) && known.length === 0) {
          throw new RegistryError(ErrorCode.NAME_UNKNOWN, undefined, { detail: { name: this.d.namespaces.displayName(repo.key) } });
        }
        this.d.logger.warn({ upstream: repo.upstream, err: (e as Error).message }, 'upstream tag list unavailable; listing cached tags');
      }
    } else if (!rec) {
      throw new RegistryError(ErrorCode.NAME_UNKNOWN, undefined, { detail: { name: this.d.namespaces.displayName(repo.key) } });
    }
    return page(names.sort(), n, last);
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
