import { skopeoPull } from './cold-pull.bench.js';
import type { BenchContext } from './context.js';
import { isBlobGet, isManifest, settle } from './measure.js';
import { row, type Row } from './report.js';
import { KINDS, startTarget } from './setup.js';

const CLIENTS = 8;

/** 4. Eight skopeo pulls of the same image at once through a fresh mirror: what reaches the upstream. */
export async function concurrentColdPulls(ctx: BenchContext): Promise<Row[]> {
  const img = ctx.images.layers20;
  const bytes: Record<string, number[]> = { wharf: [], distribution: [] };
  const blobGets: Record<string, number[]> = { wharf: [], distribution: [] };
  const requests: Record<string, number[]> = { wharf: [], distribution: [] };
  const manifests: Record<string, number[]> = { wharf: [], distribution: [] };
  const wall: Record<string, number[]> = { wharf: [], distribution: [] };
  const ok: Record<string, number[]> = { wharf: [], distribution: [] };
  for (let i = 0; i < ctx.reps; i++) {
    for (const k of KINDS) {
      const t = await startTarget(k, ctx.hub.link);
      try {
        const w = ctx.hub.mark();
        const started = performance.now();
        // Distribution answers some of these with 500s: a failed pull is counted, not fatal.
        const pulls = await Promise.allSettled(Array.from({ length: CLIENTS }, () => skopeoPull(t.url, img)));
        wall[k]!.push((performance.now() - started) / 1000);
        const failed = pulls.filter((p) => p.status === 'rejected');
        ok[k]!.push(CLIENTS - failed.length);
        if (failed.length > 0) ctx.log(`${k}: ${failed.length} pulls failed: ${String((failed[0] as PromiseRejectedResult).reason).split('\n')[0]!.slice(-200)}`);
        await settle(w);
        const reqs = w.requests();
        bytes[k]!.push(w.bytesDown() / img.blobBytes);
        blobGets[k]!.push(reqs.filter(isBlobGet).length / img.blobs.length);
        requests[k]!.push(reqs.length);
        manifests[k]!.push(reqs.filter(isManifest).length);
        ctx.log(`8 cold pulls rep ${i + 1} ${k}: ${(w.bytesDown() / img.blobBytes).toFixed(2)}× image bytes, ${reqs.length} requests`);
      } finally {
        await t.stop();
      }
    }
  }
  const scenario = `4. ${CLIENTS} concurrent cold pulls of one image (${img.label})`;
  const r1 = row({ scenario, measure: 'upstream bytes ÷ image size', unit: '×', values: bytes, ratios: [['wharf', 'distribution']] });
  r1.target = { text: '= 1.0× image size', met: (r1.values.wharf?.median ?? Infinity) < 1.01 };
  const r0 = row({ scenario, measure: `pulls that succeeded (of ${CLIENTS})`, unit: '', values: ok });
  r0.target = { text: `${CLIENTS}`, met: (r0.values.wharf?.median ?? 0) === CLIENTS };
  return [
    r0,
    r1,
    row({ scenario, measure: 'upstream blob GETs per blob', unit: '', values: blobGets }),
    row({ scenario, measure: 'upstream requests (manifest requests)', unit: '', values: requests, note: `manifest requests: wharf ${manifests.wharf!.join('/')}, Distribution ${manifests.distribution!.join('/')}` }),
    row({ scenario, measure: 'wall time, all 8 pulls', unit: 's', values: wall, ratios: [['wharf', 'distribution']] }),
  ];
}
