import type { RepositorySummary, TagSummary } from '../../core/browse-types.js';

export const SORT_KEYS = ['name', 'size', 'tags', 'updated', 'pulled', 'pulls'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface RepositoryQuery {
  /** substring of a repository or tag name, case-insensitive */
  q: string;
  kind?: 'local' | 'mirrored';
  upstream?: string;
  sort: SortKey;
  order: 'asc' | 'desc';
  /** 1-based */
  page: number;
  perPage: number;
  /** `detail=tags`: each item carries its tags (what `wharf ls --json` prints) */
  withTags?: boolean;
}

export interface RepositoryListItem {
  name: string;
  /** canonical key */
  key: string;
  upstream?: string;
  local: boolean;
  mirrored: boolean;
  tagCount: number;
  bytes: number;
  manifests: number;
  blobs: number;
  /** with `detail=tags` only */
  tags?: TagSummary[];
  updatedAt?: number;
  lastPulled?: number;
  /** manifest pulls over the last 24 h, cluster-wide (the dashboard's "most pulled" count); 0 when none or not counted */
  pulls: number;
  /** tags whose name matched the search (at most a few) */
  matchedTags?: string[];
}

export interface RepositoryPage {
  total: number;
  page: number;
  perPage: number;
  items: RepositoryListItem[];
}

export const MAX_PER_PAGE = 200;
const MATCHED_TAGS = 5;

const sortValue: Record<SortKey, (r: RepositorySummary, pulls: (key: string) => number) => number | string> = {
  name: (r) => r.name,
  size: (r) => r.bytes,
  tags: (r) => r.tags.length,
  updated: (r) => r.updatedAt ?? 0,
  pulled: (r) => r.lastPulled ?? 0,
  pulls: (r, pulls) => pulls(r.key),
};

/**
 * Search, filter, sort and one page of the repositories the viewer may pull. `pullCounts`: pulls over the
 * last day by repository key (absent: the counter is off, every count is 0).
 */
export function queryRepositories(all: readonly RepositorySummary[], q: RepositoryQuery, pullCounts?: ReadonlyMap<string, number>): RepositoryPage {
  const pulls = (key: string) => pullCounts?.get(key) ?? 0;
  const needle = q.q.trim().toLowerCase();
  const rows: Array<{ r: RepositorySummary; matchedTags?: string[] }> = [];
  for (const r of all) {
    if (q.kind === 'local' && !r.local) continue;
    if (q.kind === 'mirrored' && !r.mirrored) continue;
    if (q.upstream !== undefined && r.upstream !== q.upstream) continue;
    if (needle === '') {
      rows.push({ r });
      continue;
    }
    const nameHit = r.name.toLowerCase().includes(needle);
    const tags = r.tags.filter((t) => t.tag.toLowerCase().includes(needle)).slice(0, MATCHED_TAGS).map((t) => t.tag);
    if (nameHit || tags.length > 0) rows.push(tags.length > 0 ? { r, matchedTags: tags } : { r });
  }
  const key = sortValue[q.sort];
  const dir = q.order === 'asc' ? 1 : -1;
  rows.sort((a, b) => {
    const x = key(a.r, pulls);
    const y = key(b.r, pulls);
    const c = x < y ? -1 : x > y ? 1 : 0;
    return c !== 0 ? c * dir : a.r.name < b.r.name ? -1 : a.r.name > b.r.name ? 1 : 0;
  });
  const start = (q.page - 1) * q.perPage;
  const items = rows.slice(start, start + q.perPage).map(({ r, matchedTags }) => {
    const item: RepositoryListItem = { name: r.name, key: r.key, local: r.local, mirrored: r.mirrored, tagCount: r.tags.length, bytes: r.bytes, manifests: r.manifests, blobs: r.blobs, pulls: pulls(r.key) };
    if (q.withTags) item.tags = r.tags;
    if (r.upstream !== undefined) item.upstream = r.upstream;
    if (r.updatedAt !== undefined) item.updatedAt = r.updatedAt;
    if (r.lastPulled !== undefined) item.lastPulled = r.lastPulled;
    if (matchedTags) item.matchedTags = matchedTags;
    return item;
  });
  return { total: rows.length, page: q.page, perPage: q.perPage, items };
}
