/**
 * Issue 17 item 14: cache.maxSize is a bound during a burst. The numbers (maxSize 40 MiB, 330 MiB
 * of pulls) scaled down tenfold: maxSize 4 MiB, 33 MiB of images pulled three at a time from a real
 * Distribution, every tag fresh for an hour. Fresh tags once protected everything they named, and the
 * disk filled; now the least recently used mirrored content goes whatever its tag's freshness.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request } from '../helpers/http.js';
import { blobsOf, makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { footprint, footprintBreakdown } from '../helpers/test-storage.js';
import { describeResponse, onDisk, startWharf, waitIdle, type WharfProcess } from '../helpers/wharf.js';

const MiB = 1024 * 1024;
const MAX = 4 * MiB;
const LOW = 0.85;
/** 11 images of two incompressible 1.5 MiB layers: 33 MiB, 8 × maxSize. */
const IMAGES = 11;
const LAYER = 1.5 * MiB;

describe('cache.maxSize holds through a burst of pulls behind fresh tags', () => {
  let registry: RegistryProcess;
  let proxy: FaultProxy;
  let w: WharfProcess;
  const images: TestImage[] = [];

  before(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.url);
    for (let i = 0; i < IMAGES; i++) {
      const img = makeImage({ layers: 2, layerSize: LAYER });
      images.push(img);
      await pushImage(registry.url, `burst/i${i}`, '1', img);
    }
    w = await startWharf({
      config: {
        upstreams: [{ name: 'hub', url: proxy.url, default: true, tagFreshness: '1h' }],
        cache: { maxSize: '4MiB', evictionInterval: '500ms' },
      },
    });
  });
  after(async () => {
    await w?.stop();
    await proxy?.stop();
    await registry?.stop();
  });

  async function pull(i: number): Promise<void> {
    const img = images[i]!;
    const m = await request(`${w.url}/v2/burst/i${i}/manifests/1`, { headers: { accept: manifestAccept } });
    assert.equal(m.status, 200, describeResponse(m));
    assert.deepEqual(m.body, img.manifest);
    for (const b of blobsOf(img)) {
      const res = await request(`${w.url}/v2/burst/i${i}/blobs/${b.digest}`);
      assert.equal(res.status, 200, `${b.digest}: ${describeResponse(res)}`);
      assert.equal(sha256(res.body), b.digest);
    }
  }

  /** Bytes of every file under the data directory (blobs, metadata, temp files), and of its objects on S3. */
  function diskUsage(): Promise<number> {
    return footprint(w.dataDir);
  }

  async function mirroredBytes(): Promise<number> {
    const res = await request(`${w.url}/_wharf/admin/stats`);
    assert.equal(res.status, 200, describeResponse(res));
    return (JSON.parse(res.body.toString('utf8')) as { cache: { mirroredBytes: number } }).cache.mirroredBytes;
  }

  it('disk usage ends within 1.1 × maxSize, and every evicted image pulls again without asking for its tag', async () => {
    for (let i = 0; i < IMAGES; i += 3) await Promise.all([i, i + 1, i + 2].filter((n) => n < IMAGES).map((n) => pull(n)));
    await waitIdle(w);

    // The background loop (every 500 ms) brings mirrored content down to the low mark.
    const deadline = Date.now() + 30_000;
    let mirrored = await mirroredBytes();
    while (mirrored > MAX * LOW && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      mirrored = await mirroredBytes();
    }
    // Eviction unlinks a blob, then deletes it: the mirrored figure can drop a moment before the files (or objects) go.
    let used = await diskUsage();
    for (let i = 0; i < 100 && used > 1.1 * MAX; i++) {
      await new Promise((r) => setTimeout(r, 100));
      used = await diskUsage();
    }
    if (used > 1.1 * MAX) assert.fail(`after the burst ${used} bytes on disk (${await footprintBreakdown(w.dataDir)}), mirrored ${mirrored}; bound ${1.1 * MAX}\n${w.logs().slice(-2000)}`);

    const evicted: number[] = [];
    for (let i = 0; i < IMAGES; i++) {
      const present = await Promise.all(blobsOf(images[i]!).map((b) => onDisk(w.dataDir, b.digest)));
      if (present.includes(false)) evicted.push(i);
    }
    assert.ok(evicted.length >= IMAGES - 3, `only ${evicted.length} images lost content`);

    proxy.reset();
    for (const i of evicted) await pull(i);
    for (const i of evicted) assert.equal(proxy.count({ path: `/v2/burst/i${i}/manifests/1` }), 0, `the fresh tag of i${i} was not asked again`);
  });
});
