import type { Command } from 'commander';
import type { RepositoryInfo } from '../core/admin-service.js';
import { adminClient, assertOneTarget, human, plural, printJson, remoteOptions, when, type CommandIo, type OfflineCapable } from './common.js';
import { withOffline } from './offline.js';

export function registerLs(program: Command, io: CommandIo): void {
  remoteOptions(
    program
      .command('ls')
      .argument('[repository]', 'show one repository with its tags and digests')
      .description('list cached and local repositories: tags, sizes, last access')
      .option('--data-dir <dir>', 'read a data directory directly (wharf must not be running)'),
  ).action(async (repo: string | undefined, opts: OfflineCapable) => {
    assertOneTarget(opts);
    const repositories =
      opts.dataDir !== undefined
        ? await withOffline(opts.dataDir, { config: opts.config }, io.env, (admin) => admin.repositories(repo))
        : (await adminClient(io, opts).get<{ repositories: RepositoryInfo[] }>(`/repositories${repo !== undefined ? `?repo=${encodeURIComponent(repo)}` : ''}`)).repositories;
    if (opts.json) printJson(io, { repositories });
    else io.stdout.write(repo !== undefined ? renderRepository(repositories) : renderList(repositories));
    io.exit(0);
  });
}

function kind(r: RepositoryInfo): string {
  return r.local && r.mirrored ? 'local+mirrored' : r.local ? 'local' : 'mirrored';
}

export function renderList(repos: RepositoryInfo[]): string {
  if (repos.length === 0) return 'no repositories\n';
  const rows = [['REPOSITORY', 'KIND', 'TAGS', 'SIZE', 'LAST ACCESS'], ...repos.map((r) => [r.name, kind(r), String(r.tags.length), human(r.bytes), when(r.lastAccess)])];
  return table(rows);
}

export function renderRepository(repos: RepositoryInfo[]): string {
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
