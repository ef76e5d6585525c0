import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { digestOf, type Digest } from '../../src/oci/index.js';
import { Evictor, type EvictorDeps } from '../../src/core/eviction.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';
import { EmbeddedMetadataStore } from '../../src/store/meta/embedded.js';
import type { Origin } from '../../src/store/types.js';
import { createMetrics, type PromMetrics } from '../../src/observability/metrics.js';
import { silentLogger, type Logger } from '../../src/observability/types.js';

type T = { after(fn: () => unknown): void };

const KiB = 1024;
const MIRROR = 'docker.io/library/app';
const LOCAL = 'team/app';

async function world(t: T, over: Partial<EvictorDeps> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-evict-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const clock = { now: 1_000_000 };
  const now = () => clock.now;
  const store = await FsBlobStore.open(join(dir, 'blobs'), { now });
  const meta = await EmbeddedMetadataStore.open(join(dir, 'meta'), { now });
  t.after(() => meta.close());
  const metrics = createMetrics({ collectDefault: false });
  const busy = new Set<Digest>();
  const deps: EvictorDeps = {
    store,
    meta,
    now,
    logger: silentLogger,
    metrics,
    maxSize: 4 * KiB,
    highWatermark: 0.75, // 3072 bytes
    lowWatermark: 0.5, // 2048 bytes
    freshnessOf: () => 5_000,
    isBusy: (d) => busy.has(d),
    ...over,
  };
  const evictor = new Evictor(deps);

  async function put(bytes: Buffer): Promise<Digest> {
    const d = digestOf(bytes);
    const w = await store.create();
    await w.write(Readable.from([bytes]));
    await w.commit(d, bytes.length);
    await w.release();
    return d;
  }
  /** A blob of `size` bytes linked into `repo`, last accessed at `accessedAt`. */
  async function blob(label: string, size: number, repo: string, origin: Origin, accessedAt?: number): Promise<Digest> {
    const bytes = Buffer.from(label.padEnd(size, '.'));
    const d = await put(bytes);
    await meta.link(repo, d, { kind: 'blob', size, origin, linkedAt: clock.now });
    if (accessedAt !== undefined) await meta.recordAccess(new Map([[d, accessedAt]]));
    return d;
  }
  /** A manifest referencing `refs`, linked into `repo` (and tagged when `tag` is given). */
  async function manifest(label: string, refs: Digest[], repo: string, origin: Origin, opts: { tag?: string; checkedAt?: number; accessedAt?: number; size?: number } = {}) {
    const bytes = Buffer.from(JSON.stringify({ label, refs }).padEnd(opts.size ?? 0, ' '));
    const d = await put(bytes);
    const mediaType = 'application/vnd.oci.image.manifest.v1+json';
    await meta.link(repo, d, { kind: 'manifest', size: bytes.length, origin, mediaType, refs, linkedAt: clock.now });
    if (opts.tag) await meta.putTag(repo, opts.tag, { digest: d, mediaType, size: bytes.length, checkedAt: opts.checkedAt ?? clock.now, origin });
    if (opts.accessedAt !== undefined) await meta.recordAccess(new Map([[d, opts.accessedAt]]));
    return d;
  }
  async function readable(d: Digest): Promise<boolean> {
    const s = await store.read(d);
    if (!s) return false;
    await text(s);
    return true;
  }
  return { deps, store, meta, clock, metrics, busy, evictor, blob, manifest, readable };
}

async function metric(m: PromMetrics, name: string): Promise<number | undefined> {
  const line = (await m.render()).body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('Evictor', () => {
  it('past the high mark, evicts least recently used mirrored content until under the low mark', async (t) => {
    const w = await world(t);
    // Access order deliberately differs from creation order.
    const order = [3, 1, 4, 0, 2];
    const blobs: Digest[] = [];
    for (let i = 0; i < 5; i++) blobs.push(await w.blob(`b${i}`, 1000, MIRROR, 'upstream', 500 + order[i]!));
    const [b0, b1, b2, b3, b4] = blobs as [Digest, Digest, Digest, Digest, Digest];
    assert.deepEqual((await w.evictor.sizeReport()).mirroredBytes, 5000);

    const res = await w.evictor.runOnce();
    // 5000 → 2000 bytes: the three least recently used go, oldest first.
    assert.deepEqual(res.evicted, [b3, b1, b4]);
    assert.equal(res.freedBytes, 3000);
    for (const d of [b3, b1, b4]) {
      assert.equal(await w.store.stat(d), undefined);
      assert.deepEqual(await w.meta.linksOf(d), []);
      assert.equal(await w.meta.lastAccess(d), undefined);
    }
    assert.ok(await w.readable(b0));
    assert.ok(await w.readable(b2));
    const rep = await w.evictor.sizeReport();
    assert.equal(rep.mirroredBytes, 2000);
    assert.equal(rep.blobs, 2);
    assert.equal(await metric(w.metrics, 'wharf_cache_evictions_total'), 3);
    assert.equal(await metric(w.metrics, 'wharf_cache_size_bytes'), 2000);
    assert.equal(await metric(w.metrics, 'wharf_cache_blobs'), 2);

    // Under the high mark nothing happens, even above the low mark.
    await w.blob('b5', 1000, MIRROR, 'upstream');
    assert.deepEqual(await w.evictor.runOnce(), { evicted: [], freedBytes: 0 });
    assert.equal(await metric(w.metrics, 'wharf_cache_size_bytes'), 3000);
  });

  it('never-accessed content ranks by link time; unflushed access times count', async (t) => {
    const recent = new Map<Digest, number>();
    const w = await world(t, { recentAccess: (d) => recent.get(d) });
    const old = await w.blob('old', 1000, MIRROR, 'upstream');
    w.clock.now += 10;
    const readJustNow = await w.blob('read-just-now', 1000, MIRROR, 'upstream', 1);
    w.clock.now += 10;
    const newer = await w.blob('newer', 1000, MIRROR, 'upstream');
    w.clock.now += 10;
    await w.blob('newest', 1000, MIRROR, 'upstream');
    // Read after everything else arrived; the tracker has not flushed it yet (the store still says 1).
    recent.set(readJustNow, w.clock.now + 5);
    const res = await w.evictor.runOnce();
    assert.deepEqual(res.evicted, [old, newer]);
    assert.ok(await w.readable(readJustNow));
  });

  it('keeps local pushes and everything they reference, and does not count them against maxSize', async (t) => {
    const w = await world(t);
    // A base image mirrored from upstream...
    const baseLayer = await w.blob('base-layer', 900, 'docker.io/library/base', 'upstream', 1);
    const baseConfig = await w.blob('base-config', 100, 'docker.io/library/base', 'upstream', 1);
    const baseManifest = await w.manifest('base', [baseConfig, baseLayer], 'docker.io/library/base', 'upstream', { tag: 'old', checkedAt: 0, accessedAt: 1 });
    // ...that a locally pushed index references through a mirrored manifest (index → manifest → blobs).
    const localLayer = await w.blob('local-layer', 2000, LOCAL, 'local', 1);
    const localManifest = await w.manifest('app', [localLayer], LOCAL, 'local', { accessedAt: 1 });
    const index = await w.manifest('app-index', [localManifest, baseManifest], LOCAL, 'local', { tag: 'v1', accessedAt: 1 });
    // A blob pushed locally and also pulled from upstream is local.
    const shared = await w.blob('shared', 500, MIRROR, 'upstream', 1);
    await w.meta.link(LOCAL, shared, { kind: 'blob', size: 500, origin: 'local', linkedAt: 0 });

    const before = await w.evictor.sizeReport();
    assert.equal(before.mirroredBytes, 0, 'everything so far is local or referenced by local content');
    assert.ok(before.localBytes > 3500);
    assert.deepEqual(await w.evictor.runOnce(), { evicted: [], freedBytes: 0 }, 'local bytes alone never trigger eviction');

    const mirrored: Digest[] = [];
    for (let i = 0; i < 4; i++) mirrored.push(await w.blob(`m${i}`, 1000, MIRROR, 'upstream', 100 + i));
    const res = await w.evictor.runOnce();
    assert.deepEqual(res.evicted, mirrored.slice(0, 2));
    for (const d of [baseLayer, baseConfig, baseManifest, localLayer, localManifest, index, shared]) {
      assert.ok(await w.readable(d), `${d} survives`);
    }
    assert.equal((await w.meta.getTag('docker.io/library/base', 'old'))?.digest, baseManifest);
    assert.equal((await w.meta.linksOf(shared)).length, 2);
  });

  it('evicts least recently used content behind a fresh tag too, keeping the fresh tag record; a stale tag record goes', async (t) => {
    const w = await world(t);
    const layer = await w.blob('layer', 1000, MIRROR, 'upstream', 1);
    const config = await w.blob('config', 200, MIRROR, 'upstream', 1);
    const man = await w.manifest('m', [config, layer], MIRROR, 'upstream', { tag: 'latest', checkedAt: w.clock.now - 1_000, accessedAt: 1 });
    const fillers: Digest[] = [];
    for (let i = 0; i < 2; i++) fillers.push(await w.blob(`f${i}`, 1000, MIRROR, 'upstream', 10 + i));

    let res = await w.evictor.runOnce();
    // A fresh tag protects nothing: the least recently used content goes, and the bound holds.
    assert.deepEqual(new Set(res.evicted), new Set([man, layer, config]));
    assert.ok((await w.evictor.sizeReport()).mirroredBytes <= 2048);
    for (const d of [layer, config, man]) {
      assert.equal(await w.meta.getLink(MIRROR, d), undefined);
      assert.equal(await w.store.stat(d), undefined);
    }
    // The tag is still within its freshness window: its record stays, so the next pull fetches the
    // manifest by digest without asking the upstream for the tag.
    assert.equal((await w.meta.getTag(MIRROR, 'latest'))?.digest, man);

    // A stale tag's record goes with its manifest.
    const man2 = await w.manifest('m2', [], MIRROR, 'upstream', { tag: 'old', checkedAt: w.clock.now - 10_000, accessedAt: 2 });
    for (let i = 2; i < 4; i++) fillers.push(await w.blob(`f${i}`, 1000, MIRROR, 'upstream', 10 + i));
    res = await w.evictor.runOnce();
    assert.ok(res.evicted.includes(man2));
    assert.equal(await w.meta.getTag(MIRROR, 'old'), undefined);
  });

  it('skips digests being read or written right now', async (t) => {
    const w = await world(t);
    const blobs: Digest[] = [];
    for (let i = 0; i < 4; i++) blobs.push(await w.blob(`b${i}`, 1000, MIRROR, 'upstream', i));
    w.busy.add(blobs[0]!);
    const res = await w.evictor.runOnce();
    assert.deepEqual(res.evicted, [blobs[1], blobs[2]]);
    assert.ok(await w.readable(blobs[0]!));
    assert.ok(await w.meta.getLink(MIRROR, blobs[0]!));
  });

  it('removes an evicted digest from every repository that mirrored it', async (t) => {
    const w = await world(t);
    const d = await w.blob('everywhere', 2000, MIRROR, 'upstream', 1);
    await w.meta.link('ghcr.io/acme/tool', d, { kind: 'blob', size: 2000, origin: 'upstream', linkedAt: 0 });
    await w.blob('other', 2000, MIRROR, 'upstream', 2);
    assert.deepEqual((await w.evictor.runOnce()).evicted, [d]);
    assert.deepEqual(await w.meta.linksOf(d), []);
  });

  it('runs in the background one pass at a time and stops cleanly', async (t) => {
    const errors: object[] = [];
    const logger: Logger = { ...silentLogger, error: (o) => void errors.push(o), child: () => logger };
    const w = await world(t, { logger });
    for (let i = 0; i < 4; i++) await w.blob(`b${i}`, 1000, MIRROR, 'upstream', i);
    const [p1, p2] = [w.evictor.runOnce(), w.evictor.runOnce()];
    assert.equal(p1, p2, 'a second caller joins the pass in progress');
    await p1;

    for (let i = 4; i < 6; i++) await w.blob(`b${i}`, 1000, MIRROR, 'upstream', i);
    w.evictor.start(5);
    t.after(() => w.evictor.stop());
    const deadline = Date.now() + 5_000;
    while ((await w.evictor.sizeReport()).mirroredBytes > 2048 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await w.evictor.stop();
    assert.ok((await w.evictor.sizeReport()).mirroredBytes <= 2048);
    assert.deepEqual(errors, []);
  });

  it('rejects watermarks that cannot work', async (t) => {
    const w = await world(t);
    assert.throws(() => new Evictor({ ...w.deps, highWatermark: 0.5, lowWatermark: 0.9 }), /watermarks/);
  });
});

describe('eviction across replicas', () => {
  it('runs a pass only while this replica holds the eviction lease, and releases it after', async (t) => {
    let held = false;
    let granted = 0;
    let released = 0;
    // A fake lease in place of Redis: another replica holds it until `held` is cleared.
    const lease = async () => {
      if (held) return undefined;
      granted++;
      return { release: async () => void released++ };
    };
    const w = await world(t, { lease });
    for (let i = 0; i < 4; i++) await w.blob(`m${i}`, 1 * KiB, MIRROR, 'upstream', i);

    held = true;
    assert.deepEqual((await w.evictor.runOnce()).evicted, [], 'another replica evicts: this one does nothing');
    held = false;
    const { evicted } = await w.evictor.runOnce();
    assert.equal(evicted.length, 2, 'with the lease the cache goes under the low mark');
    assert.equal(granted, 1);
    assert.equal(released, 1, 'the lease is released after the pass');
  });
});
