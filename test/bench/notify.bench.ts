import { makeImage, pushImage } from '../helpers/oci-image.js';
import { startReceiver } from '../helpers/webhook.js';
import { pull } from './client.js';
import { startWharfBuild } from './processes.js';
import type { Figures } from './throttle.bench.js';

const ROUNDS = 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/**
 * Push and pull latency of a small image on a plain wharf registry: without webhooks, and with one
 * endpoint that never answers beside a healthy one (README "Notifications": a dead endpoint delays no
 * request). Each figure is the median of ROUNDS push+pull rounds.
 */
export async function notifyLatency(): Promise<Figures> {
  const f: Figures = new Map();
  const stuck = await startReceiver('hang');
  const ok = await startReceiver('ok');
  try {
    const setups: Array<[string, Record<string, unknown>]> = [
      ['no endpoints', { upstreams: [] }],
      // The durable queue's cost alone (an fsync before each answer), so the dead endpoint's share can be told apart.
      ['one healthy endpoint', { upstreams: [], notifications: { endpoints: [{ name: 'ok', url: ok.url }] } }],
      [
        'endpoint that never answers + a healthy one',
        { upstreams: [], notifications: { endpoints: [{ name: 'stuck', url: stuck.url, timeout: '1h' }, { name: 'ok', url: ok.url }] } },
      ],
    ];
    for (const [label, config] of setups) {
      const w = await startWharfBuild({ config });
      try {
        const pushMs: number[] = [];
        const pullMs: number[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          const img = makeImage({ layers: 2, layerSize: 64 * 1024 });
          let t = performance.now();
          await pushImage(w.url, `bench/notify-${i}`, 'v1', img);
          pushMs.push(performance.now() - t);
          t = performance.now();
          const r = await pull(w.url, `bench/notify-${i}`, 'v1');
          if (!r.ok) throw new Error(`pull failed: ${r.problem ?? ''}`);
          pullMs.push(performance.now() - t);
        }
        f.set(`${label}: push / pull (median ms)`, `${median(pushMs).toFixed(1)} / ${median(pullMs).toFixed(1)}`);
      } finally {
        await w.stop();
      }
    }
    f.set('events the healthy endpoint got', String(ok.events().length));
  } finally {
    await stuck.stop();
    await ok.stop();
  }
  return f;
}
