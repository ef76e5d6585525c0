import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { manifestAccept } from '../helpers/http.js';
import { streamGet } from './client.js';
import type { BenchContext } from './context.js';
import { settle } from './measure.js';
import { row, type Row } from './report.js';
import { KINDS, type TargetKind } from './setup.js';

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

/** 2. Manifest by tag under load, warm: req/s and p99 at 32 connections, alternating runs. */
export async function manifestThroughput(ctx: BenchContext): Promise<Row[]> {
  const img = ctx.images.index;
  const headers = { accept: manifestAccept };
  const url = (k: TargetKind): string => `${ctx.warm[k].url}/v2/${img.repo}/manifests/${img.tag}`;
  for (const k of KINDS) {
    for (let i = 0; i < 20; i++) {
      const r = await streamGet(url(k), headers);
      if (r.status !== 200) throw new Error(`${k}: warm-up GET: HTTP ${r.status} ${r.head.slice(0, 200)}`);
    }
  }
  const rps: Record<string, number[]> = { wharf: [], distribution: [] };
  const p99: Record<string, number[]> = { wharf: [], distribution: [] };
  const upstream: Record<string, number[]> = { wharf: [], distribution: [] };
  for (let i = 0; i < ctx.reps; i++) {
    for (const k of KINDS) {
      const w = ctx.hub.mark();
      const res = await autocannon(url(k), headers, LOAD_SECONDS, LOAD_CONNECTIONS);
      await settle(w, 300);
      if (res.non2xx > 0 || res.errors + res.timeouts > 0) throw new Error(`${k}: ${res.non2xx} non-2xx, ${res.errors} errors, ${res.timeouts} timeouts`);
      rps[k]!.push(res.requests.average);
      p99[k]!.push(res.latency.p99);
      upstream[k]!.push(res.requests.total > 0 ? (w.requests().length * 1000) / res.requests.total : 0);
      ctx.log(`manifest rep ${i + 1} ${k}: ${res.requests.average.toFixed(0)} req/s, p99 ${res.latency.p99} ms`);
    }
  }
  const scenario = `2. Warm manifest GET by tag, ${LOAD_CONNECTIONS} connections, ${LOAD_SECONDS} s runs`;
  const r1 = row({ scenario, measure: 'requests per second', unit: 'req/s', values: rps, ratios: [['wharf', 'distribution']] });
  r1.target = { text: '≥ 3× Distribution', met: (r1.ratios['wharf/distribution'] ?? 0) >= 3 };
  const r2 = row({ scenario, measure: 'p99 latency', unit: 'ms', values: p99, ratios: [['wharf', 'distribution']] });
  r2.target = { text: 'lower than Distribution', met: (r2.ratios['wharf/distribution'] ?? Infinity) < 1 };
  const r3 = row({ scenario, measure: 'upstream requests per 1000 client requests', unit: '', values: upstream });
  return [r1, r2, r3];
}
