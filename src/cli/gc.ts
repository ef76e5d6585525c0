import type { Command } from 'commander';
import type { GcReport } from '../core/lifecycle-types.js';
import { adminClient, assertOneTarget, human, plural, printJson, remoteOptions, type CommandIo, type OfflineCapable } from './common.js';
import { duration, withOffline } from './offline.js';

interface GcOptions extends OfflineCapable {
  dryRun?: boolean;
  grace?: string;
  uploadExpiry?: string;
}

export function registerGc(program: Command, io: CommandIo): void {
  remoteOptions(
    program
      .command('gc')
      .description('remove unreferenced blobs, expired upload sessions and stray temp files')
      .option('--dry-run', 'list what would be removed, remove nothing')
      .option('--grace <duration>', 'spare blobs and temp files younger than this (default: 5m through --url, 0 offline)')
      .option('--data-dir <dir>', 'work on a data directory directly (wharf must not be running)')
      .option('--upload-expiry <duration>', 'offline: upload sessions idle this long expire', '24h'),
  ).action(async (opts: GcOptions) => {
    assertOneTarget(opts);
    const dryRun = opts.dryRun === true;
    const graceMs = opts.grace !== undefined ? duration('--grace', opts.grace) : undefined;
    const report =
      opts.dataDir !== undefined
        ? await withOffline(opts.dataDir, opts, io.env, (admin) => admin.gc({ dryRun, ...(graceMs !== undefined ? { graceMs } : {}) }))
        : await adminClient(io, opts).post<GcReport>(`/gc?dryRun=${dryRun ? 1 : 0}${graceMs !== undefined ? `&graceMs=${graceMs}` : ''}`);
    if (opts.json) printJson(io, report);
    else io.stdout.write(renderGc(report));
    io.exit(0);
  });
}

export function renderGc(r: GcReport): string {
  const verb = r.dryRun ? 'would remove' : 'removed';
  const lines: string[] = [];
  for (const b of r.blobs) lines.push(`${verb} blob ${b.digest} (${human(b.size)})`);
  for (const u of r.uploads) lines.push(`${verb} upload ${u.id} in ${u.repo} (${human(u.size)})`);
  for (const t of r.temps) lines.push(`${verb} temp file ${t}`);
  const what = `${plural(r.blobs.length, 'blob')}, ${plural(r.uploads.length, 'expired upload')}, ${plural(r.temps.length, 'temp file')}`;
  lines.push(r.dryRun ? `dry run: would remove ${what}; would free ${human(r.freedBytes)}` : `removed ${what}; freed ${human(r.freedBytes)}`);
  return `${lines.join('\n')}\n`;
}
