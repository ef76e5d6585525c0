import type { Command } from 'commander';
import type { VerifyReport } from '../core/admin-service.js';
import { adminClient, assertOneTarget, human, plural, printJson, remoteOptions, type CommandIo, type OfflineCapable } from './common.js';
import { withOffline } from './offline.js';

export function registerVerify(program: Command, io: CommandIo): void {
  remoteOptions(
    program
      .command('verify')
      .description('re-hash every stored blob; mismatches are quarantined and unlinked (exit code 1 when any was found)')
      .option('--data-dir <dir>', 'check a data directory directly (wharf must not be running)'),
  ).action(async (opts: OfflineCapable) => {
    assertOneTarget(opts);
    const r = opts.dataDir !== undefined ? await withOffline(opts.dataDir, { config: opts.config }, io.env, (admin) => admin.verify()) : await adminClient(io, opts).post<VerifyReport>('/verify');
    if (opts.json) printJson(io, r);
    else {
      const lines: string[] = [];
      for (const c of r.corrupt) {
        const where = c.repositories.length > 0 ? `; unlinked from ${c.repositories.join(', ')}` : '';
        lines.push(`CORRUPT ${c.digest}: content hashes to ${c.actual} (${human(c.size)}); ${c.quarantined ? 'moved to quarantine/' : 'deleted'}${where}`);
      }
      if (r.skipped.length > 0) lines.push(`skipped ${plural(r.skipped.length, 'blob')} being written right now`);
      lines.push(`verified ${plural(r.checked, 'blob')} (${human(r.bytes)}): ${r.corrupt.length === 0 ? 'all match' : `${r.corrupt.length} did not match`}`);
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    io.exit(r.corrupt.length > 0 ? 1 : 0);
  });
}
