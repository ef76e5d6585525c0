import { pull } from './client.js';
import { isBlobGet, isManifest, mib, secs, settle, type Figures, type ScenarioContext } from './measure.js';

/** 1. One cold pull: what it costs upstream, in requests and in bytes. */
export async function coldPull({ target, hub, images }: ScenarioContext): Promise<Figures> {
  const img = images.one;
  const w = hub.mark();
  const r = await pull(target, 'bench/one', 'v1', img);
  await settle(w);
  const reqs = w.requests();
  const blobGets = reqs.filter(isBlobGet).length;
  const manifests = reqs.filter(isManifest).length;
  const f: Figures = new Map();
  f.set('client pull', r.ok ? `ok in ${secs(r.ms)}` : `FAILED: ${r.problem ?? ''}`);
  f.set('upstream blob GETs', `${blobGets} (image: ${img.blobs.length} blobs)`);
  f.set('upstream requests: all / manifest / token', `${reqs.length} / ${manifests} / ${w.tokens().length}`);
  f.set('upstream bytes received', `${mib(w.bytesDown())} (image blobs: ${mib(img.blobBytes)})`);
  return f;
}

const CLIENTS = 8;

/** 2. Eight clients pull the same uncached image at once: does the mirror fetch each blob once? */
export async function concurrentColdPulls({ target, hub, images }: ScenarioContext): Promise<Figures> {
  const img = images.many;
  const w = hub.mark();
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: CLIENTS }, () => pull(target, 'bench/many', 'v1', img)));
  const ms = performance.now() - started;
  await settle(w);
  const reqs = w.requests();
  const perBlob = img.blobs.map((b) => reqs.filter((r) => isBlobGet(r) && r.path.endsWith(b.digest)).length);
  const layerGets = img.blobs
    .filter((b) => b.size > 1024 * 1024)
    .map((b) => reqs.filter((r) => isBlobGet(r) && r.path.endsWith(b.digest)).length);
  const ok = results.filter((r) => r.ok).length;
  const firstProblem = results.find((r) => !r.ok)?.problem;
  const f: Figures = new Map();
  f.set('clients ok', `${ok}/${CLIENTS} in ${secs(ms)}${firstProblem !== undefined ? ` (${firstProblem})` : ''}`);
  f.set('upstream GETs per blob: min / max', `${Math.min(...perBlob)} / ${Math.max(...perBlob)} (per 8 MiB layer: ${layerGets.join(', ')})`);
  f.set('upstream requests: all / manifest / token', `${reqs.length} / ${reqs.filter(isManifest).length} / ${w.tokens().length}`);
  f.set('upstream bytes received', `${mib(w.bytesDown())} (image blobs: ${mib(img.blobBytes)})`);
  return f;
}
