import { manifestAccept } from '../helpers/http.js';
import { streamGet, type Fetched } from './client.js';
import { isBlobGet, median, MiB, mib, rss, sampleRss, secs, settle, type Figures, type ScenarioContext } from './measure.js';
import type { BenchImage } from './setup.js';

const CLIENTS = 8;
const WARM_RUNS = 3;

function layerOf(img: BenchImage): { digest: string; size: number } {
  const big = img.blobs.reduce((a, b) => (b.size > a.size ? b : a));
  return big;
}

function rate(r: Fetched): string {
  return `${(r.bytes / MiB / (r.ms / 1000)).toFixed(0)} MiB/s`;
}

function check(r: Fetched, want: { digest: string; size: number }): void {
  if (r.status !== 200) throw new Error(`blob GET: HTTP ${r.status} ${r.head.slice(0, 200)}`);
  if (r.digest !== want.digest || r.bytes !== want.size) throw new Error(`blob GET: got ${r.bytes} bytes ${r.digest}`);
}

/** 6. One 64 MiB blob: cold and warm throughput, then memory while eight clients pull another one cold. */
export async function bigBlob({ target, hub, images }: ScenarioContext): Promise<Figures> {
  const f: Figures = new Map();
  const blobUrl = (repo: string, digest: string): string => `${target.url}/v2/${repo}/blobs/${digest}`;

  // A client asks for the manifest first, as a pull does; that also tells the mirror the repository exists.
  const m1 = await streamGet(`${target.url}/v2/bench/big1/manifests/v1`, { accept: manifestAccept });
  if (m1.status !== 200) throw new Error(`bench/big1 manifest: HTTP ${m1.status}`);
  const l1 = layerOf(images.big1);
  const w1 = hub.mark();
  const cold = await streamGet(blobUrl('bench/big1', l1.digest));
  check(cold, l1);
  await settle(w1);
  f.set('cold GET (one client)', `${rate(cold)} (${secs(cold.ms)}, ${w1.requests().filter(isBlobGet).length} upstream GET, ${mib(w1.bytesDown())} upstream)`);
  const warm: Fetched[] = [];
  for (let i = 0; i < WARM_RUNS; i++) {
    const r = await streamGet(blobUrl('bench/big1', l1.digest));
    check(r, l1);
    warm.push(r);
  }
  const warmMs = median(warm.map((r) => r.ms));
  f.set(`warm GET (median of ${WARM_RUNS})`, `${(l1.size / MiB / (warmMs / 1000)).toFixed(0)} MiB/s (${secs(warmMs)})`);

  const pid = target.pid();
  const m2 = await streamGet(`${target.url}/v2/bench/big2/manifests/v1`, { accept: manifestAccept });
  if (m2.status !== 200) throw new Error(`bench/big2 manifest: HTTP ${m2.status}`);
  const l2 = layerOf(images.big2);
  const before = pid === undefined ? undefined : await rss(pid);
  const sampler = pid === undefined ? undefined : sampleRss(pid, 100);
  const w2 = hub.mark();
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: CLIENTS }, () => streamGet(blobUrl('bench/big2', l2.digest))));
  const ms = performance.now() - started;
  await settle(w2);
  const samples = (await sampler?.stop()) ?? [];
  const ok = results.filter((r) => r.status === 'fulfilled' && r.value.status === 200 && r.value.digest === l2.digest).length;
  const failed = results.find((r) => r.status === 'rejected' || r.value.status !== 200);
  const why = failed === undefined ? '' : failed.status === 'rejected' ? ` (${String(failed.reason)})` : ` (HTTP ${failed.value.status})`;
  f.set(`${CLIENTS} concurrent cold GETs of a 64 MiB blob`, `${ok}/${CLIENTS} ok in ${secs(ms)}, ${w2.requests().filter(isBlobGet).length} upstream GETs, ${mib(w2.bytesDown())} upstream${why}`);
  f.set(
    'RSS: before / peak during (100 ms samples)',
    before === undefined || samples.length === 0 ? 'n/a' : `${mib(before)} / ${mib(Math.max(...samples))} (${samples.length} samples)`,
  );
  return f;
}
