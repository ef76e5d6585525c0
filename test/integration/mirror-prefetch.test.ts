/**
 * Layer prefetch against a real Distribution upstream (token auth) behind a counting proxy: a manifest
 * that comes from the upstream starts the download of its config and layers, so a client that asks for
 * them one at a time finds them cached or on their way, and each blob crosses the upstream link once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getBlob, getManifest, seen, show, sleep, startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage, makeMultiPlatform, sha256, type TestImage } from '../helpers/oci-image.js';
import { request } from '../helpers/http.js';
import { copy } from '../helpers/skopeo.js';
import { tempDir } from '../helpers/tmp.js';
import { onDisk, waitOnDisk, type WharfProcess } from '../helpers/wharf.js';

let hub: MirrorUpstream;
let w: WharfProcess;

before(async () => {
  hub = await startHubUpstream();
  w = await startMirror([hub.config()]);
});
after(async () => {
  await w?.stop();
  await hub?.stop();
});

const blobsOfImage = (img: TestImage) => [img.config, ...img.layers];

/** An upstream of its own (so its proxy counts only this test) and a wharf with `prefetch` set; both stopped after the test. */
async function ownMirror(t: { after(fn: () => Promise<void>): void }, prefetch: number): Promise<{ up: MirrorUpstream; mirror: WharfProcess }> {
  const up = await startHubUpstream();
  const mirror = await startMirror([up.config({ prefetch })]);
  t.after(async () => {
    await mirror.stop();
    await up.stop();
  });
  return { up, mirror };
}
/** Upstream blob GETs per digest of `repo` recorded by the proxy since `mark`. */
function blobGets(mark: number, repo: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of hub.proxy.requests.slice(mark)) {
    const m = new RegExp(`^/v2/${repo}/blobs/(sha256:[0-9a-f]{64})$`).exec(r.path);
    if (m && r.method === 'GET') out.set(m[1]!, (out.get(m[1]!) ?? 0) + 1);
  }
  return out;
}

async function metric(at: WharfProcess, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await request(`${at.url}/metrics`)).body.toString('utf8');
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('layer prefetch', () => {
  it('a manifest request alone brings the config and layers into the cache: the pull that follows needs no upstream', async () => {
    const img = makeImage({ layers: 3, layerSize: 64 * 1024 });
    await hub.push('pf/alone', '1', img);
    const head = await getManifest(w, 'pf/alone', '1', { method: 'HEAD' }); // how Docker and containerd resolve a tag
    assert.equal(head.status, 200, show(head));
    await waitOnDisk(w.dataDir, blobsOfImage(img).map((b) => b.digest));

    // The upstream now refuses every blob: only the cache can answer.
    hub.proxy.inject({ match: { path: /^\/v2\/pf\/alone\/blobs\// }, action: { kind: 'status', status: 503 } });
    const mark = hub.proxy.requests.length;
    try {
      for (const b of blobsOfImage(img)) {
        const res = await getBlob(w, 'pf/alone', b.digest);
        assert.equal(res.status, 200, show(res));
        assert.equal(sha256(res.body), b.digest);
      }
    } finally {
      hub.proxy.clearFaults();
    }
    assert.equal(blobGets(mark, 'pf/alone').size, 0, seen(hub.proxy, { path: /\/blobs\// }));
  });

  it('an index prefetches nothing (the platform is not known yet); the platform manifest then prefetches only its own blobs', async () => {
    const index = makeMultiPlatform({ layers: 2, layerSize: 32 * 1024 });
    await hub.push('pf/multi', '1', index);
    const [amd64, arm64] = index.images as [TestImage, TestImage];
    const mark = hub.proxy.requests.length;
    const top = await getManifest(w, 'pf/multi', '1');
    assert.equal(top.status, 200, show(top));
    const child = await getManifest(w, 'pf/multi', arm64.manifestDigest);
    assert.equal(child.status, 200, show(child));
    await waitOnDisk(w.dataDir, blobsOfImage(arm64).map((b) => b.digest));
    await sleep(300); // time enough for a wrong prefetch of the other platform to show
    for (const b of blobsOfImage(amd64)) assert.equal(await onDisk(w.dataDir, b.digest), false, `amd64 ${b.digest} was fetched`);
    assert.deepEqual([...blobGets(mark, 'pf/multi').keys()].sort(), blobsOfImage(arm64).map((b) => b.digest).sort());
  });

  it('skopeo pulls through a slow upstream while prefetch runs: every blob crosses the upstream link exactly once', async (t) => {
    const img = makeImage({ layers: 6, layerSize: 96 * 1024 });
    await hub.push('pf/skopeo', '1', img);
    // Slow blob answers, so the client's asks land while prefetch downloads are still running.
    hub.proxy.inject({ match: { method: 'GET', path: /^\/v2\/pf\/skopeo\/blobs\// }, action: { kind: 'delay', ms: 150 } });
    t.after(() => hub.proxy.clearFaults());
    const dst = await tempDir();
    t.after(() => dst.cleanup());
    const mark = hub.proxy.requests.length;
    await copy(`docker://${w.host}/pf/skopeo:1`, `dir:${dst.path}/img`);
    const gets = blobGets(mark, 'pf/skopeo');
    assert.deepEqual([...gets.keys()].sort(), blobsOfImage(img).map((b) => b.digest).sort(), seen(hub.proxy, { path: /\/blobs\// }));
    for (const [d, n] of gets) assert.equal(n, 1, `${d} fetched ${n} times`);
    await waitOnDisk(w.dataDir, blobsOfImage(img).map((b) => b.digest));
  });

  it('keeps at most `prefetch` downloads per upstream running at once', async (t) => {
    const { up, mirror: two } = await ownMirror(t, 2);
    const img = makeImage({ layers: 7, layerSize: 4096 });
    await up.push('pf/limit', '1', img);
    const DELAY = 400;
    up.proxy.inject({ match: { method: 'GET', path: /\/blobs\// }, action: { kind: 'delay', ms: DELAY } });
    const res = await getManifest(two, 'pf/limit', '1');
    assert.equal(res.status, 200, show(res));
    await waitOnDisk(two.dataDir, blobsOfImage(img).map((b) => b.digest), 30_000);
    // Each of the 2 lanes starts its next download only after the last one (which took ≥ DELAY) ended,
    // so no window shorter than DELAY holds more than 2 arrivals.
    const arrivals = up.proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/blobs/')).map((r) => r.at).sort((a, b) => a - b);
    assert.equal(arrivals.length, blobsOfImage(img).length);
    for (let i = 2; i < arrivals.length; i++) {
      assert.ok(arrivals[i]! - arrivals[i - 2]! >= DELAY - 50, `3 downloads started within ${arrivals[i]! - arrivals[i - 2]!} ms: ${arrivals.map((a) => a - arrivals[0]!).join(', ')}`);
    }
  });

  it('a corrupted blob fetched ahead is never cached; the client asking for it gets the real bytes', async (t) => {
    const img = makeImage({ layers: 2, layerSize: 32 * 1024 });
    await hub.push('pf/corrupt', '1', img);
    const bad = img.layers[1]!;
    hub.proxy.inject({ match: { method: 'GET', path: `/v2/pf/corrupt/blobs/${bad.digest}` }, times: 1, action: { kind: 'corrupt' } });
    t.after(() => hub.proxy.clearFaults());
    const failedBefore = await metric(w, 'wharf_prefetch_blobs_total', { result: 'failed' });
    const res = await getManifest(w, 'pf/corrupt', '1');
    assert.equal(res.status, 200, show(res));
    await waitOnDisk(w.dataDir, [img.config.digest, img.layers[0]!.digest]);
    const deadline = Date.now() + 10_000;
    while ((await metric(w, 'wharf_prefetch_blobs_total', { result: 'failed' })) === failedBefore && Date.now() < deadline) await sleep(50);
    assert.equal(await metric(w, 'wharf_prefetch_blobs_total', { result: 'failed' }), failedBefore + 1);
    assert.equal(await onDisk(w.dataDir, bad.digest), false, 'the corrupted download was cached');
    const blob = await getBlob(w, 'pf/corrupt', bad.digest);
    assert.equal(blob.status, 200, show(blob));
    assert.equal(sha256(blob.body), bad.digest);
  });

  it('prefetch: 0 turns it off: a manifest request fetches no blob', async (t) => {
    const { up, mirror: off } = await ownMirror(t, 0);
    const img = makeImage({ layers: 2 });
    await up.push('pf/off', '1', img);
    const res = await getManifest(off, 'pf/off', '1');
    assert.equal(res.status, 200, show(res));
    await sleep(500);
    assert.equal(up.proxy.count({ path: /\/blobs\// }), 0, seen(up.proxy));
  });
});
