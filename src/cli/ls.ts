import type { Command } from 'commander';
import type { RepositoryInfo } from '../core/admin-service.js';
import type { RepositorySummary, TagSummary } from '../core/browse-types.js';
import type { RepositoryListItem, RepositoryPage } from '../http/api/search.js';
import type { AdminClient } from './admin-client.js';
import { apiClient, assertOneTarget, human, plural, printJson, remoteOptions, when, type CommandIo, type OfflineCapable } from './common.js';
import { withOffline } from './offline.js';

/** One repository as `wharf ls` shows it: the admin report's keys (offline) or the JSON API's (remote), merged. */
export type LsRepository = Omit<RepositoryInfo, 'tags'> & {
  tags: Array<RepositoryInfo['tags'][number] | LsTag>;
  tagCount: number;
} & Partial<Pick<RepositorySummary, 'upstream' | 'updatedAt' | 'lastPulled'>> & {
  /** manifest pulls over the last 24 h, cluster-wide (remote only: the API's count) */
  pulls?: number;
};

/** A tag from the API with the admin report's `checkedAt` (when pushed or last confirmed upstream). */
export type LsTag = TagSummary & { checkedAt: number };

/** the API's largest page */
const PER_PAGE = 200;

export function registerLs(program: Command, io: CommandIo): void {
  remoteOptions(
    program
      .command('ls')
      .argument('[repository]', 'show one repository with its tags and digests')
      .description('list cached and local repositories: tags, sizes, last pull (the web UI\'s figures, from /_wharf/api/)')
      .option('--data-dir <dir>', 'read a data directory directly (wharf must not be running)'),
  ).action(async (repo: string | undefined, opts: OfflineCapable) => {
    assertOneTarget(opts);
    const repositories: LsRepository[] =
      opts.dataDir !== undefined
        ? (await withOffline(opts.dataDir, { config: opts.config }, io.env, (admin) => admin.repositories(repo))).map((r) => ({ ...r, tagCount: r.tags.length }))
        : repo !== undefined
          ? [fromSummary(await apiClient(io, opts).api<RepositorySummary>(`/repository?name=${encodeURIComponent(repo)}`))]
          : await listAll(apiClient(io, opts), opts.json === true);
    if (opts.json) printJson(io, { repositories });
    else io.stdout.write(repo !== undefined ? renderRepository(repositories) : renderList(repositories));
    io.exit(0);
  });
}

/** Every repository the caller may pull, page by page (with their tags for --json). */
async function listAll(client: AdminClient, withTags: boolean): Promise<LsRepository[]> {
  const out: LsRepository[] = [];
  for (let page = 1; ; page++) {
    const p = await client.api<RepositoryPage>(`/repositories?perPage=${PER_PAGE}&page=${page}${withTags ? '&detail=tags' : ''}`);
    out.push(...p.items.map(fromItem));
    if (p.items.length === 0 || page * p.perPage >= p.total) return out;
  }
}

/** The API's figures under the keys `wharf ls --json` has always printed (lastAccess: the latest pull). */
function fromItem(i: Omit<RepositoryListItem, 'pulls'> & { pulls?: number }): LsRepository {
  const r: LsRepository = {
    name: i.name, key: i.key, local: i.local, mirrored: i.mirrored, tags: (i.tags ?? []).map(tagOf), tagCount: i.tagCount,
    manifests: i.manifests, blobs: i.blobs, bytes: i.bytes,
  };
  if (i.upstream !== undefined) r.upstream = i.upstream;
  if (i.updatedAt !== undefined) r.updatedAt = i.updatedAt;
  if (i.lastPulled !== undefined) r.lastPulled = r.lastAccess = i.lastPulled;
  if (i.pulls !== undefined) r.pulls = i.pulls;
  return r;
}

function fromSummary(s: RepositorySummary): LsRepository {
  return fromItem({ ...s, tagCount: s.tags.length });
}

function tagOf(t: TagSummary): LsTag {
  return { ...t, checkedAt: t.updatedAt };
}

function kind(r: Pick<RepositoryInfo, 'local' | 'mirrored'>): string {
  return r.local && r.mirrored ? 'local+mirrored' : r.local ? 'local' : 'mirrored';
}

export function renderList(repos: LsRepository[]): string {
  if (repos.length === 0) return 'no repositories\n';
  const rows = [['REPOSITORY', 'KIND', 'TAGS', 'SIZE', 'LAST ACCESS'], ...repos.map((r) => [r.name, kind(r), String(r.tagCount), human(r.bytes), when(r.lastAccess)])];
  return table(rows);
}

export function renderRepository(repos: LsRepository[]): string {
  const out: string[] = [];
  for (const r of repos) {
    out.push(`${r.name} (${kind(r)}; key ${r.key}): ${plural(r.manifests, 'manifest')}, ${plural(r.blobs, 'blob')}, ${human(r.bytes)}; last access ${when(r.lastAccess)}`);
    if (r.tags.length === 0) out.push('  no tags');
    else out.push(table([['TAG', 'DIGEST', 'ORIGIN', 'CHECKED'], ...r.tags.map((t) => [t.tag, t.digest, t.origin, when(t.checkedAt)])], '  ').trimEnd());
  }
  return `${out.join('\n')}\n`;
}

export function table(rows: string[][], indent = ''): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((row) => indent + row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}
