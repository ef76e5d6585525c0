import { basename } from 'node:path';
import { manifestAccept } from '../helpers/http.js';
import { curlGets, streamGet } from './client.js';
import { largest, MiB, type BenchContext } from './context.js';
import { row, type Row, type Subject } from './report.js';

const CLIENTS = 8;

async function verify(url: string, want: { digest: string; size: number }): Promise<void> {
  const r = await streamGet(url, {}, 120_000);
  if (r.status !== 200 || r.digest !== want.digest || r.bytes !== want.size) {
    throw new Error(`${url}: HTTP ${r.status}, ${r.bytes} bytes ${r.digest} (want ${want.size} ${want.digest})`);
  }
}

/** 1. Warm GET of the 256 MiB layer: one client, then 8 at once; wharf, Distribution and nginx in turn. */
export async function warmBlobThroughput(ctx: BenchContext): Promise<Row[]> {
  const img = ctx.images.big256;
  const layer = largest(img);
  if (ctx.nginx === undefined) throw new Error('nginx is not running');
  const urls: Record<Subject, string> = {
    wharf: `${ctx.warm.wharf.url}/v2/${img.repo}/blobs/${layer.digest}`,
    distribution: `${ctx.warm.distribution.url}/v2/${img.repo}/blobs/${layer.digest}`,
    nginx: `${ctx.nginx.url}/${basename(layer.path!)}`,
    disk: '',
    direct: '',
  };
  const subjects: Subject[] = ['wharf', 'distribution', 'nginx'];
  for (const k of ['wharf', 'distribution'] as const) {
    // A pull starts with the manifest; the first GET fills the cache, the second checks the warm copy.
    const m = await streamGet(`${ctx.warm[k].url}/v2/${img.repo}/manifests/${img.tag}`, { accept: manifestAccept });
    if (m.status !== 200) throw new Error(`${k}: manifest HTTP ${m.status}`);
    await verify(urls[k], layer);
    await verify(urls[k], layer);
  }
  await verify(urls.nginx, layer);
  const one: Record<string, number[]> = { wharf: [], distribution: [], nginx: [] };
  const many: Record<string, number[]> = { wharf: [], distribution: [], nginx: [] };
  for (let i = 0; i < ctx.reps; i++) {
    for (const s of subjects) {
      const r1 = await curlGets(urls[s], 1);
      if (r1.statuses.some((x) => x !== 200) || r1.bytes !== layer.size) throw new Error(`${s}: single GET ${r1.statuses.join(',')} ${r1.bytes} bytes`);
      one[s]!.push(r1.bytes / MiB / (r1.wallMs / 1000));
      const r8 = await curlGets(urls[s], CLIENTS);
      if (r8.statuses.some((x) => x !== 200) || r8.bytes !== layer.size * CLIENTS) throw new Error(`${s}: ${CLIENTS} GETs ${r8.statuses.join(',')} ${r8.bytes} bytes`);
      many[s]!.push(r8.bytes / MiB / (r8.wallMs / 1000));
    }
    ctx.log(`warm blob rep ${i + 1}: 1 client ${subjects.map((s) => `${s} ${one[s]!.at(-1)!.toFixed(0)}`).join(', ')} MiB/s; 8 clients ${subjects.map((s) => `${s} ${many[s]!.at(-1)!.toFixed(0)}`).join(', ')} MiB/s`);
  }
  const scenario = '1. Warm blob GET, 256 MiB layer';
  const rows = [
    row({ scenario, measure: '1 client', unit: 'MiB/s', values: one, ratios: [['wharf', 'distribution'], ['wharf', 'nginx']] }),
    row({ scenario, measure: `${CLIENTS} concurrent clients, total`, unit: 'MiB/s', values: many, ratios: [['wharf', 'distribution'], ['wharf', 'nginx']] }),
  ];
  for (const r of rows) {
    const vsPeer = r.ratios['wharf/distribution'] ?? 0;
    const vsNginx = r.ratios['wharf/nginx'] ?? 0;
    r.target = { text: '≥ 1.0× Distribution (aim ≥ 0.8× nginx)', met: vsPeer >= 1 };
    r.note = `wharf/nginx ${vsNginx.toFixed(2)}× (aim ≥ 0.8×: ${vsNginx >= 0.8 ? 'met' : 'missed'})`;
  }
  return rows;
}
