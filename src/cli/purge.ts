import type { Command } from 'commander';
import type { PurgeReport } from '../core/admin-service.js';
import { adminClient, human, plural, printJson, remoteOptions, type CommandIo, type RemoteOptions } from './common.js';

export function registerPurge(program: Command, io: CommandIo): void {
  remoteOptions(
    program
      .command('purge')
      .argument('<ref>', 'image to drop from the cache: name[:tag] or name@digest')
      .description('drop a mirrored image from the cache (tag, manifests, blobs used by nothing else); local images are refused'),
  ).action(async (ref: string, opts: RemoteOptions) => {
    const r = await adminClient(io, opts).delete<PurgeReport>(`/images?ref=${encodeURIComponent(ref)}`);
    if (opts.json) printJson(io, r);
    else {
      const lines = [`purged ${ref} (${r.repository})`];
      if (r.tags.length > 0) lines.push(`  untagged ${r.tags.join(', ')}`);
      lines.push(`  unlinked ${plural(r.unlinked.length, 'digest')}; removed ${plural(r.removed.length, 'blob')}, freed ${human(r.freedBytes)}`);
      io.stdout.write(`${lines.join('\n')}\n`);
    }
    io.exit(0);
  });
}
