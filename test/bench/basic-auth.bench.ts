import { randomUUID } from 'node:crypto';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { pushImage } from '../helpers/oci-image.js';
import { startBasicRegistry } from '../helpers/registry.js';
import { pull } from './client.js';
import { secs, type Figures } from './measure.js';
import { layeredImage, startTarget, type TargetKind } from './setup.js';

/** 5. An upstream with Basic auth only (a private registry with htpasswd): can each mirror pull from it? */
export async function basicAuthUpstream(kinds: TargetKind[]): Promise<Map<TargetKind, Figures>> {
  const username = 'bench';
  const password = `pw-${randomUUID()}`;
  const out = new Map<TargetKind, Figures>();
  const registry = await startBasicRegistry({ [username]: password });
  const stops: Array<() => Promise<void>> = [() => registry.stop()];
  try {
    const img = layeredImage(2, 64 * 1024);
    await pushImage(registry.url, 'bench/private', 'v1', img.image, { username, password });
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
        const r = await pull(target, 'bench/private', 'v1', img);
        const statuses = `manifest ${r.manifestStatus}${r.blobStatuses.length > 0 ? `, blobs ${r.blobStatuses.join('/')}` : ''}`;
        f.set('pull through the mirror', r.ok ? `ok in ${secs(r.ms)} (${statuses})` : `fails: ${r.problem ?? ''}`);
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
