import { pull } from './client.js';
import type { BenchContext } from './context.js';
import { settle } from './measure.js';
import { row, type Row } from './report.js';
import { KINDS } from './setup.js';

const PULLS = 100;

/** 5. 100 warm pulls of a tag (index → platform manifest → blobs): the manifest requests Docker Hub would count. */
export async function warmPulls(ctx: BenchContext): Promise<Row[]> {
  const img = ctx.images.index;
  const gets: Record<string, number[]> = { wharf: [], distribution: [] };
  const heads: Record<string, number[]> = { wharf: [], distribution: [] };
  for (const k of KINDS) {
    const base = ctx.warm[k].url;
    const first = await pull(base, img.repo, img.tag);
    if (!first.ok) throw new Error(`${k}: warm-up pull: ${first.problem ?? ''}`);
    const w = ctx.hub.mark();
    for (let i = 0; i < PULLS; i++) {
      const r = await pull(base, img.repo, img.tag);
      if (!r.ok) throw new Error(`${k}: pull ${i + 1}: ${r.problem ?? ''}`);
    }
    await settle(w, 300);
    const m = w.requests().filter((r) => /\/manifests\//.test(r.path));
    gets[k]!.push(m.filter((r) => r.method === 'GET').length);
    heads[k]!.push(m.filter((r) => r.method === 'HEAD').length);
  }
  const scenario = `5. ${PULLS} warm pulls of a tag (within wharf's freshness window)`;
  const r1 = row({ scenario, measure: 'upstream manifest GETs', unit: '', values: gets });
  r1.target = { text: '0', met: r1.values.wharf?.median === 0 };
  return [r1, row({ scenario, measure: 'upstream manifest HEADs', unit: '', values: heads })];
}
