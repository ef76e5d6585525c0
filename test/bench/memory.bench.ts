import { manifestAccept } from '../helpers/http.js';
import { curlGets, streamGet } from './client.js';
import { largest, MiB, type BenchContext } from './context.js';
import { memory, sleep } from './measure.js';
import { row, type Row } from './report.js';
import { KINDS, startTarget } from './setup.js';

const CLIENTS = 8;

/** 6. Peak RSS of a fresh mirror while 8 clients GET the uncached 1 GiB layer at once. */
export async function peakRss(ctx: BenchContext): Promise<Row[]> {
  const img = ctx.images.big1g;
  const layer = largest(img);
  const peak: Record<string, number[]> = { wharf: [], distribution: [] };
  const idle: Record<string, number[]> = { wharf: [], distribution: [] };
  for (let i = 0; i < ctx.reps; i++) {
    // Distribution, the reference here, fetches the blob once per client (8 GiB over the link): once is enough.
    for (const k of i === 0 ? KINDS : (['wharf'] as const)) {
      const t = await startTarget(k, ctx.hub.link);
      try {
        const m = await streamGet(`${t.url}/v2/${img.repo}/manifests/${img.tag}`, { accept: manifestAccept });
        if (m.status !== 200) throw new Error(`${k}: manifest HTTP ${m.status}`);
        await sleep(200);
        const before = await memory(t.pid!);
        const r = await curlGets(`${t.url}/v2/${img.repo}/blobs/${layer.digest}`, CLIENTS, 300_000);
        if (r.statuses.some((s) => s !== 200) || r.bytes !== layer.size * CLIENTS) throw new Error(`${k}: ${r.statuses.join(',')}, ${r.bytes} bytes`);
        // VmHWM: the high-water mark over the process's life, which began just before this test.
        const after = await memory(t.pid!);
        idle[k]!.push((before?.rss ?? NaN) / MiB);
        peak[k]!.push((after?.peak ?? NaN) / MiB);
        ctx.log(`peak RSS rep ${i + 1} ${k}: ${((after?.peak ?? 0) / MiB).toFixed(0)} MiB (idle ${((before?.rss ?? 0) / MiB).toFixed(0)} MiB), ${(r.wallMs / 1000).toFixed(1)} s`);
      } finally {
        await t.stop();
      }
    }
  }
  const scenario = `6. Memory: ${CLIENTS} concurrent cold GETs of the 1 GiB layer`;
  const r1 = row({ scenario, measure: 'peak RSS (VmHWM)', unit: 'MiB', values: peak, ratios: [['wharf', 'distribution']] });
  r1.target = { text: '≤ 200 MiB', met: (r1.values.wharf?.median ?? Infinity) <= 200 };
  return [r1, row({ scenario, measure: 'RSS before the GETs', unit: 'MiB', values: idle })];
}
