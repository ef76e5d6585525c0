import { randomUUID } from 'node:crypto';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import { startBasicRegistry } from '../helpers/registry.js';
import { pull } from './client.js';
import { startTarget, type TargetKind } from './setup.js';
import type { Figures } from './throttle.bench.js';

/** An upstream with Basic auth only (a private registry with htpasswd): can each mirror pull from it? */
export async function basicAuthUpstream(kinds: TargetKind[]): Promise<Map<TargetKind, Figures>> {
  const username = 'bench';
  const password = `pw-${randomUUID()}`;
  const out = new Map<TargetKind, Figures>();
  const registry = await startBasicRegistry({ [username]: password });
  const stops: Array<() => Promise<void>> = [() => registry.stop()];
  try {
    await pushImage(registry.url, 'bench/private', 'v1', makeImage({ layers: 2, layerSize: 64 * 1024 }), { username, password });
    // Counts what the upstream answered: only 401s means the mirror never got its credentials accepted.
    const proxy = await startFaultProxy(registry.url);
    stops.push(() => proxy.stop());
    for (const kind of kinds) {
      const f: Figures = new Map();
      out.set(kind, f);
      proxy.reset();
      let target;
      try {
        target = await startTarget(kind, { url: proxy.url, username, password });
      } catch (err) {
        f.set('pull through the mirror', `mirror did not start: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      try {
        const r = await pull(target.url, 'bench/private', 'v1');
        f.set('pull through the mirror', r.ok ? `ok in ${(r.ms / 1000).toFixed(2)} s` : `fails: ${r.problem ?? ''}`);
        const answered = new Map<number, number>();
        for (const q of proxy.requests) answered.set(q.status, (answered.get(q.status) ?? 0) + 1);
        f.set('upstream answered (status × count)', [...answered].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(', '));
      } finally {
        await target.stop();
      }
    }
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  }
  return out;
}
