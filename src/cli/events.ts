import type { Command } from 'commander';
import type { EndpointStatus } from '../notify/index.js';
import { adminClient, plural, printJson, remoteOptions, type CommandIo, type RemoteOptions } from './common.js';

/**
 * `wharf events`: webhook endpoints and their delivery state; `wharf events retry [endpoint]` ends a back-off
 * now; `wharf events resend <endpoint> --from … [--to …]` sends a range of kept events again.
 */
export function registerEvents(program: Command, io: CommandIo): void {
  const events = remoteOptions(program.command('events').description('notification endpoints: pending events, failures, back-off')).action(async (opts: RemoteOptions) => {
    const { endpoints } = await adminClient(io, opts).get<{ endpoints: EndpointStatus[] }>('/events');
    if (opts.json) printJson(io, endpoints);
    else io.stdout.write(renderEndpoints(endpoints));
    io.exit(0);
  });
  // The connection options belong to `events` (commander gives them to the parent wherever they are written).
  events.command('retry [endpoint]').description('retry delivery now (ends a back-off) for one endpoint, or all').action(async (endpoint: string | undefined, _o: object, cmd: Command) => {
    const opts = cmd.optsWithGlobals<RemoteOptions>();
    const q = endpoint ? `?endpoint=${encodeURIComponent(endpoint)}` : '';
    const res = await adminClient(io, opts).post<{ retried: string }>(`/events/retry${q}`);
    if (opts.json) printJson(io, res);
    else io.stdout.write(`retrying ${res.retried}\n`);
    io.exit(0);
  });
  events
    .command('resend <endpoint>')
    .description('send one endpoint the kept events (notifications.retention) from --from to --to again, in order')
    .requiredOption('--from <id|time>', 'first event: its id, or a time (RFC 3339, e.g. 2026-01-02T15:04:05Z)')
    .option('--to <id|time>', 'last event (default: the newest)')
    .action(async (endpoint: string, _o: object, cmd: Command) => {
      const opts = cmd.optsWithGlobals<RemoteOptions & { from: string; to?: string }>();
      const q = new URLSearchParams({ endpoint, from: opts.from, ...(opts.to ? { to: opts.to } : {}) });
      const res = await adminClient(io, opts).post<{ endpoint: string; resent: number }>(`/events/resend?${q}`);
      if (opts.json) printJson(io, res);
      else io.stdout.write(`${plural(res.resent, 'event')} queued again for ${res.endpoint}\n`);
      io.exit(0);
    });
}

export function renderEndpoints(endpoints: EndpointStatus[]): string {
  if (endpoints.length === 0) return 'no notification endpoints configured\n';
  return endpoints
    .map((e) => {
      if (e.disabled) return `${e.name}: disabled (${e.url})\n`;
      const state = e.failures === 0 ? 'ok' : `failing (${plural(e.failures, 'failure')} in a row${e.lastError ? `: ${e.lastError}` : ''})`;
      const oldest = e.pending > 0 ? `, oldest ${Math.round(e.oldestPendingSeconds)} s` : '';
      return `${e.name}: ${state}; ${plural(e.pending, 'event')} pending${oldest}; ${e.delivered} delivered since start (${e.format} → ${e.url})\n`;
    })
    .join('');
}
