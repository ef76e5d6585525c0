import type { Command } from 'commander';
import type { AdminStats } from '../core/admin-service.js';
import type { ApiStats } from '../http/api/index.js';
import { sparedUpstream, type CacheOutcome } from '../observability/types.js';
import type { RateLimitReading } from '../upstream/types.js';
import { apiClient, human, plural, printJson, remoteOptions, type CommandIo, type RemoteOptions } from './common.js';

export interface TrafficFigures {
  /** cache requests the upstream did not have to serve for their pull (see sparedUpstream) */
  hits: number;
  requests: number;
  bytesFromCache: number;
  bytesFromUpstream: number;
  /** mirrored bytes the upstream did not have to send (wharf_bytes_spared_total) */
  bytesSpared: number;
}

/** Hit ratio in [0, 1], the one formula every figure uses; undefined before the first request. */
export function hitRatio(t: Pick<TrafficFigures, 'hits' | 'requests'>): number | undefined {
  return t.requests > 0 ? t.hits / t.requests : undefined;
}

export function registerStats(program: Command, io: CommandIo): void {
  remoteOptions(
    program.command('stats').description('cache size, hit ratio, bytes saved and upstream rate-limit headroom (the web UI\'s figures, from /_wharf/api/stats)'),
  ).action(async (opts: RemoteOptions) => {
    const stats = await apiClient(io, opts).api<ApiStats>('/stats');
    const traffic = trafficOf(stats);
    // --json: the API's answer, plus `traffic` as this command has always printed it
    if (opts.json) printJson(io, { ...stats, traffic });
    else io.stdout.write(renderStats(adminView(stats), traffic));
    io.exit(0);
  });
}

/** The API's traffic figures (the same counters /metrics shows, read by wharf itself). */
export function trafficOf(s: Pick<ApiStats, 'hits' | 'requests' | 'bytesFromCache' | 'bytesFromUpstream' | 'bytesSpared'>): TrafficFigures {
  return { hits: s.hits, requests: s.requests, bytesFromCache: s.bytesFromCache, bytesFromUpstream: s.bytesFromUpstream, bytesSpared: s.bytesSpared };
}

function adminView(s: ApiStats): AdminStats {
  const upstreams = s.upstreams.map((u) => (u.rateLimit ? { name: u.name, rateLimit: u.rateLimit as RateLimitReading } : { name: u.name }));
  return { cache: s.cache, upstreams, repositories: s.repositories, tags: s.tags, uploads: s.uploads };
}

/**
 * Sums the wharf_cache_requests_total / wharf_bytes_*_total samples of a Prometheus text exposition: the
 * figures of `/metrics`, which `wharf stats` now gets from the API (observability/traffic.ts reads the same
 * counters); kept so that a scrape can be checked against the same formula.
 */
export function trafficFrom(text: string): TrafficFigures {
  const t: TrafficFigures = { hits: 0, requests: 0, bytesFromCache: 0, bytesFromUpstream: 0, bytesSpared: 0 };
  for (const line of text.split('\n')) {
    const spared = /^wharf_bytes_spared_total(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (spared && Number.isFinite(Number(spared[1]))) t.bytesSpared += Number(spared[1]);
    const m = /^(wharf_cache_requests_total|wharf_bytes_served_total)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (m[1] === 'wharf_cache_requests_total') {
      t.requests += value;
      if (labels.outcome !== undefined && sparedUpstream(labels.outcome as CacheOutcome)) t.hits += value;
    } else if (labels.source === 'cache') t.bytesFromCache += value;
    else if (labels.source === 'upstream') t.bytesFromUpstream += value;
  }
  return t;
}

export function renderStats(s: AdminStats, traffic: TrafficFigures): string {
  const c = s.cache;
  const limit =
    c.maxSize !== undefined
      ? `limit ${human(c.maxSize)}, eviction from ${human(c.maxSize * c.highWatermark)} down to ${human(c.maxSize * c.lowWatermark)}`
      : 'no size limit';
  const lines = [
    `cache: mirrored ${human(c.mirroredBytes)} in ${plural(c.mirroredBlobs, 'blob')} (${limit})`,
    `       local ${human(c.localBytes)} in ${plural(c.localBlobs, 'blob')} (never evicted); unreferenced ${human(c.unlinkedBytes)} in ${plural(c.unlinkedBlobs, 'blob')} (wharf gc)`,
  ];
  const r = hitRatio(traffic);
  const ratio = r !== undefined ? `${(r * 100).toFixed(1)}% (${traffic.hits} of ${traffic.requests} requests spared the upstream)` : 'no requests yet';
  lines.push(`hit ratio: ${ratio}`);
  lines.push(`upstream spared: ${human(traffic.bytesSpared)} (bandwidth saved); ${human(traffic.bytesFromUpstream)} sent by the upstream for misses`);
  for (const u of s.upstreams) {
    const r = u.rateLimit;
    if (!r || r.limit === undefined) {
      lines.push(`upstream ${u.name}: no rate-limit reading yet`);
      continue;
    }
    const window = r.windowSeconds !== undefined ? ` per ${span(r.windowSeconds)}` : '';
    const pct = r.remaining !== undefined && r.limit > 0 ? ` (${Math.round((r.remaining / r.limit) * 100)}% headroom)` : '';
    lines.push(`upstream ${u.name}: ${r.remaining ?? '?'} of ${r.limit} pulls left${window}${pct}`);
  }
  const repos = s.repositories;
  lines.push(`repositories: ${repos.total} (${repos.local} local, ${repos.mirrored} mirrored); ${plural(s.tags, 'tag')}; ${plural(s.uploads, 'upload')} in progress`);
  return `${lines.join('\n')}\n`;
}

function span(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
