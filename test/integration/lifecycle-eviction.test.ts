/**
 * cache.maxSize against a real upstream: a small cache filled past its high mark by pulls keeps its
 * mirrored content under the limit, drops the least recently used first (a fresh tag protects nothing),
 * never touches local pushes, and an evicted image is fetched from upstream again (behind a fresh tag,
 * by digest, without asking for the tag).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { blobStored } from '../helpers/test-storage.js';
import { describeResponse, startWharf, waitIdle, type WharfProcess } from '../helpers/wharf.js';

const MiB = 1024 * 1024;
const MAX = 3 * MiB;
const HIGH = 0.95;
const LOW = 0.85;

let registry: RegistryProcess;
let staleProxy: FaultProxy;
let freshProxy: FaultProxy;
let w: WharfProcess;

before(async () => {
  registry = await startRegistry();
  // Two upstream entries over one registry: tags from `stale` are revalidated on every pull; tags from
  // `fresh.test` stay fresh for an hour (which no longer protects what they point at from eviction).
  staleProxy = await startFaultProxy(registry.url);
  freshProxy = await startFaultProxy(registry.url);
  w = await startWharf({
    config: {
      upstreams: [
        { name: 'stale', url: staleProxy.url, default: true, tagFreshness: '0s' },
        { name: 'fresh', url: freshProxy.url, aliases: ['fresh.test'], tagFreshness: '1h' },
      ],
      cache: { maxSize: '3MiB', highWatermark: HIGH, lowWatermark: LOW, evictionInterval: '200ms' },
    },
  });
});
after(async () => {
  await w?.stop();
  await Promise.all([staleProxy?.stop(), freshProxy?.stop()]);
  await registry?.stop();
});

interface Stats {
  cache: { mirroredBytes: number; localBytes: number; maxSize: number };
}

async function stats(): Promise<Stats> {
  const res = await request(`${w.url}/_wharf/admin/stats`);
  assert.equal(res.status, 200, describeResponse(res));
  return JSON.parse(res.body.toString('utf8')) as Stats;
}

/** Waits for the background loop (200 ms) to bring mirrored content down to the low mark. */
async function settled(): Promise<Stats> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const s = await stats();
    if (s.cache.mirroredBytes <= MAX * LOW) return s;
    if (Date.now() > deadline) assert.fail(`mirrored content stays at ${s.cache.mirroredBytes} bytes, above the low mark ${MAX * LOW}\n${w.logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function pull(name: string, tag: string, img: TestImage): Promise<void> {
  const m = await request(`${w.url}/v2/${name}/manifests/${tag}`, { headers: { accept: manifestAccept } });
  assert.equal(m.status, 200, describeResponse(m));
  assert.deepEqual(m.body, img.manifest);
  for (const b of [img.config, ...img.layers]) await pullBlob(name, b.digest);
  await waitIdle(w);
}

async function pullBlob(name: string, digest: string): Promise<void> {
  const res = await request(`${w.url}/v2/${name}/blobs/${digest}`);
  assert.equal(res.status, 200, `${digest}: ${describeResponse(res)}`);
  assert.equal(sha256(res.body), digest);
}

/** wharf's eviction lines, for a failure message (which pass took what, and why it stopped). */
function evictionLog(): string {
  return w.logs().split('\n').filter((l) => l.includes('evict')).slice(-20).join('\n');
}

function onDisk(digest: string): Promise<boolean> {
  return blobStored(w.dataDir, digest);
}

async function allOnDisk(img: TestImage): Promise<boolean> {
  for (const b of [img.config, ...img.layers]) if (!(await onDisk(b.digest))) return false;
  return true;
}

/** ~517 KiB: two incompressible 256 KiB layers. Five of them stay under the low mark, six go over the high one. */
const image = () => makeImage({ layers: 2, layerSize: 256 * 1024 });

describe('eviction keeps mirrored content under cache.maxSize', () => {
  const s = Array.from({ length: 6 }, image);
  const fresh = image();
  const local = makeImage({ layers: 2, layerSize: 512 * 1024 });

  it('evicts the least recently used mirrored content, behind a fresh tag or not, and spares local content', async () => {
    await pushImage(w.url, 'team/app', '1', local);
    await pushImage(registry.url, 'acme/keep', '1', fresh);
    for (const [i, img] of s.entries()) await pushImage(registry.url, `acme/s${i}`, '1', img);

    await pull('fresh.test/acme/keep', '1', fresh);
    for (let i = 0; i < 4; i++) await pull(`acme/s${i}`, '1', s[i]!);
    // s0 is read again: s1 is now the least recently used mirrored image.
    for (const b of [s[0]!.config, ...s[0]!.layers]) await pullBlob('acme/s0', b.digest);
    const before = await stats();
    assert.ok(before.cache.mirroredBytes < MAX * HIGH, `5 images (${before.cache.mirroredBytes} bytes) stay under the high mark`);
    assert.ok(before.cache.localBytes >= 1024 * 1024, 'the local push is counted apart');

    await pull('acme/s4', '1', s[4]!);
    const after = await settled();
    assert.ok(after.cache.mirroredBytes <= MAX, `mirrored ${after.cache.mirroredBytes} <= maxSize`);
    // Eviction is per blob and stops at the low mark: getting there takes both of the oldest image's layers,
    // while its config and manifest (a few hundred bytes, read at nearly the same moment) may or may not go too.
    for (const b of fresh.layers) assert.equal(await onDisk(b.digest), false, `least recently used layer ${b.digest} evicted although its tag is fresh\n${evictionLog()}`);
    for (const i of [0, 1, 2, 3, 4]) assert.ok(await allOnDisk(s[i]!), `s${i} kept`);
    assert.ok(await allOnDisk(local), 'local pushes are never evicted');

    // Keep going: the cache never grows past the limit, and local content survives every round.
    await pull('acme/s5', '1', s[5]!);
    const later = await settled();
    assert.ok(later.cache.mirroredBytes <= MAX, `mirrored ${later.cache.mirroredBytes} <= maxSize`);
    for (const l of s[1]!.layers) assert.equal(await onDisk(l.digest), false, `least recently used s1 layer ${l.digest} evicted`);
    assert.ok(await allOnDisk(s[0]!), 's0 was read after s1: kept');
    assert.ok(await allOnDisk(s[5]!), 'the newest pull is kept');
    assert.ok(await allOnDisk(local), 'local content still kept');
    const res = await request(`${w.url}/v2/team/app/manifests/1`, { headers: { accept: manifestAccept } });
    assert.deepEqual(res.body, local.manifest, 'the local image is still served');
  });

  it('an evicted image is fetched from upstream again, bytes verified', async () => {
    const layer = s[1]!.layers[0]!;
    const path = `/v2/acme/s1/blobs/${layer.digest}`;
    const before = staleProxy.count({ method: 'GET', path });
    await pull('acme/s1', '1', s[1]!);
    assert.equal(staleProxy.count({ method: 'GET', path }), before + 1, 'one new upstream GET for the evicted layer');
    await settled();
  });

  it('an image evicted behind a fresh tag pulls again: manifest by digest, the tag not asked again', async () => {
    freshProxy.reset();
    await pull('fresh.test/acme/keep', '1', fresh);
    assert.equal(freshProxy.count({ path: '/v2/acme/keep/manifests/1' }), 0, `the fresh tag was not asked again: ${JSON.stringify(freshProxy.requests)}`);
    assert.equal(freshProxy.count({ method: 'GET', path: `/v2/acme/keep/manifests/${fresh.manifestDigest}` }), 1);
    assert.ok(freshProxy.count({ method: 'GET', path: `/v2/acme/keep/blobs/${fresh.layers[0]!.digest}` }) >= 1, 'evicted layers fetched again');
    await settled();
  });
});
