import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { manifestAccept } from '../helpers/http.js';
import { streamGet } from './client.js';
import type { BenchContext } from './context.js';
import { settle } from './measure.js';
import { row, type Row } from './report.js';
import { KINDS, startTarget, type TargetKind } from './setup.js';

const LOAD_SECONDS = 5;
const LOAD_CONNECTIONS = 32;

interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}

/**
 * autocannon in its own process: in this one it would share an event loop (and the 2 CPUs' worth of
 * scheduling) with the fault proxy and token service that Distribution calls on every request.
 */
function autocannon(url: string, headers: Record<string, string>, seconds: number, connections: number): Promise<CannonResult> {
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const args = [bin, '-c', String(connections), '-d', String(seconds), '-j', '-n'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    c.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
    const killer = setTimeout(() => c.kill('SIGKILL'), (seconds + 30) * 1000);
    c.once('error', (e) => {
      clearTimeout(killer);
      reject(e);
    });
    c.once('exit', (code) => {
      clearTimeout(killer);
      try {
        resolve(JSON.parse(out) as CannonResult);
      } catch {
        reject(new Error(`autocannon exited ${code}: ${err.slice(-500)} ${out.slice(0, 300)}`));
      }
    });
  });
}

/**
 * 2. Manifest by tag under load, warm: req/s and p99 at 32 connections, alternating runs. A third wharf
 * with `log.level: warn` (no access log lines) runs in the same alternation: the difference is what the
 * access log costs on the warm manifest path.
 */
export async function manifestThroughput(ctx: BenchContext): Promise<Row[]> {
  const quiet = await startTarget('wharf', ctx.hub.link, { logLevel: 'warn' });
  try {
    return await measureManifests(ctx, quiet.url, quiet.pid);
  } finally {
    await quiet.stop();
  }
}

/** CPU seconds (user + system) a process has used; on a shared machine steadier than throughput. */
async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function measureManifests(ctx: BenchContext, quietUrl: string, quietPid: number | undefined): Promise<Row[]> {
  const img = ctx.images.index;
  const headers = { accept: manifestAccept };
  const path = `/v2/${img.repo}/manifests/${img.tag}`;
  const url = (k: TargetKind | 'quiet'): string => `${k === 'quiet' ? quietUrl : ctx.warm[k].url}${path}`;
  for (const k of [...KINDS, 'quiet'] as const) {
    for (let i = 0; i < 20; i++) {
      const r = await streamGet(url(k), headers);
      if (r.status !== 200) throw new Error(`${k}: warm-up GET: HTTP ${r.status} ${r.head.slice(0, 200)}`);
    }
  }
  const quietRps: number[] = [];
  /** wharf CPU ms per 1000 warm manifest requests, with and without the access log */
  const cpu: { logged: number[]; quiet: number[] } = { logged: [], quiet: [] };
  const rps: Record<string, number[]> = { wharf: [], distribution: [] };
  const p99: Record<string, number[]> = { wharf: [], distribution: [] };
  const upstream: Record<string, number[]> = { wharf: [], distribution: [] };
  for (let i = 0; i < ctx.reps; i++) {
    for (const k of KINDS) {
      const w = ctx.hub.mark();
      const cpu0 = k === 'wharf' ? await cpuSeconds(ctx.warm.wharf.pid) : 0;
      const res = await autocannon(url(k), headers, LOAD_SECONDS, LOAD_CONNECTIONS);
      if (k === 'wharf') cpu.logged.push(((await cpuSeconds(ctx.warm.wharf.pid)) - cpu0) * 1e6 / res.requests.total);
      await settle(w, 300);
      if (res.non2xx > 0 || res.errors + res.timeouts > 0) throw new Error(`${k}: ${res.non2xx} non-2xx, ${res.errors} errors, ${res.timeouts} timeouts`);
      rps[k]!.push(res.requests.average);
      p99[k]!.push(res.latency.p99);
      upstream[k]!.push(res.requests.total > 0 ? (w.requests().length * 1000) / res.requests.total : 0);
      ctx.log(`manifest rep ${i + 1} ${k}: ${res.requests.average.toFixed(0)} req/s, p99 ${res.latency.p99} ms`);
    }
    const qcpu0 = await cpuSeconds(quietPid);
    const q = await autocannon(url('quiet'), headers, LOAD_SECONDS, LOAD_CONNECTIONS);
    cpu.quiet.push(((await cpuSeconds(quietPid)) - qcpu0) * 1e6 / q.requests.total);
    if (q.non2xx > 0 || q.errors + q.timeouts > 0) throw new Error(`wharf without access log: ${q.non2xx} non-2xx, ${q.errors} errors`);
    quietRps.push(q.requests.average);
    ctx.log(`manifest rep ${i + 1} wharf, log.level warn: ${q.requests.average.toFixed(0)} req/s, p99 ${q.latency.p99} ms`);
  }
  const scenario = `2. Warm manifest GET by tag, ${LOAD_CONNECTIONS} connections, ${LOAD_SECONDS} s runs`;
  const r1 = row({ scenario, measure: 'requests per second', unit: 'req/s', values: rps, ratios: [['wharf', 'distribution']] });
  r1.target = { text: '≥ 3× Distribution', met: (r1.ratios['wharf/distribution'] ?? 0) >= 3 };
  const r2 = row({ scenario, measure: 'p99 latency', unit: 'ms', values: p99, ratios: [['wharf', 'distribution']] });
  r2.target = { text: 'lower than Distribution', met: (r2.ratios['wharf/distribution'] ?? Infinity) < 1 };
  const r3 = row({ scenario, measure: 'upstream requests per 1000 client requests', unit: '', values: upstream });
  const r4 = row({ scenario, measure: 'requests per second without the access log (log.level warn)', unit: 'req/s', values: { wharf: quietRps } });
  const r5 = row({ scenario, measure: 'wharf CPU ms per 1000 requests, access log on', unit: 'ms', values: { wharf: cpu.logged } });
  const r6 = row({ scenario, measure: 'wharf CPU ms per 1000 requests, access log off', unit: 'ms', values: { wharf: cpu.quiet } });
  const on = r5.values.wharf?.median;
  const off = r6.values.wharf?.median;
  if (on !== undefined && off !== undefined && off > 0) {
    // CPU per request, not req/s: on a shared machine throughput swings with the neighbours' load.
    const cost = (on / off - 1) * 100;
    r5.note = `the access log costs ${cost.toFixed(1)} % of wharf's CPU per warm manifest request`;
    r5.target = { text: 'access log within 5 %', met: cost <= 5 };
  }
  return [r1, r2, r3, r4, r5, r6];
}
