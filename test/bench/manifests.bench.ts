import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { manifestAccept } from '../helpers/http.js';
import { streamGet } from './client.js';
import { settle, type Figures, type ScenarioContext } from './measure.js';

export const LOAD_SECONDS = 10;
export const LOAD_CONNECTIONS = 16;

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

/** 3. Manifest by tag under load, after warm-up: speed, and what each client request costs upstream. */
export async function manifestThroughput({ target, hub }: ScenarioContext): Promise<Figures> {
  const url = `${target.url}/v2/bench/tags/manifests/v1`;
  const headers = { accept: manifestAccept };
  for (let i = 0; i < 20; i++) {
    const r = await streamGet(url, headers);
    if (r.status !== 200) throw new Error(`warm-up GET: HTTP ${r.status} ${r.head.slice(0, 200)}`);
  }
  const w = hub.mark();
  const res = await autocannon(url, headers, LOAD_SECONDS, LOAD_CONNECTIONS);
  await settle(w, 300);
  const total = res.requests.total;
  const per1000 = (n: number): string => (total > 0 ? ((n * 1000) / total).toFixed(total >= 10_000 ? 2 : 1) : 'n/a');
  const f: Figures = new Map();
  f.set('req/s (mean)', res.requests.average.toFixed(0));
  f.set('latency p50 / p99', `${res.latency.p50} ms / ${res.latency.p99} ms`);
  f.set('client requests: total / non-2xx / errors', `${total} / ${res.non2xx} / ${res.errors + res.timeouts}`);
  f.set('upstream requests per 1000', per1000(w.requests().length));
  f.set('token requests per 1000', per1000(w.tokens().length));
  return f;
}
