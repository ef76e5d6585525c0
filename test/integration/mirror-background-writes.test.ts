/**
 * A mirrored manifest is answered as soon as it arrives from the upstream; storing it (three fsyncs in a
 * row: the file, its link, the tag) runs after. Meanwhile it is still one upstream GET however many
 * clients ask, a listing or a push check waits for it, and a store that fails loses nothing a client can
 * see. A blob's client gets its last byte before the cache commit; shutdown (App.close → settle) waits
 * for both kinds of write. The registry core runs in-process on the real stores, with the blob store's fsync held or failed
 * on demand; the upstream is a real Distribution 2.8 behind a counting proxy.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UpstreamNamespaces } from '../../src/core/namespaces.js';
import { createRegistry } from '../../src/core/registry.js';
import { MediaType, type Digest } from '../../src/oci/index.js';
import { noMetrics, silentLogger, type Metrics } from '../../src/observability/types.js';
import { EmbeddedMetadataStore, FsBlobStore } from '../../src/store/index.js';
import type { MetadataStore } from '../../src/store/types.js';
import { nodeBlobFs, type BlobFs } from '../../src/store/blob/blob-fs.js';
import { createUpstream } from '../../src/upstream/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { heldSyncFs } from '../helpers/faulty-fs.js';
import { stillPending, within } from '../helpers/settle.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { upstreamConfig } from '../helpers/upstream-config.js';

/** Metadata whose blob links can be held (while held, link() waits): a link still being written. */
function heldLinks(): { wrap: (m: MetadataStore) => MetadataStore; hold: () => void; linking: Promise<void>; release: () => void } {
  let held = false;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const linking = new Promise<void>((r) => (started = r));
  const wrap = (m: MetadataStore): MetadataStore =>
    new Proxy(m, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (prop !== 'link' || typeof v !== 'function') return typeof v === 'function' ? v.bind(target) : v;
        return async (...args: Parameters<MetadataStore['link']>) => {
          if (held) {
            started();
            await gate;
          }
          return m.link(...args);
        };
      },
    });
  return { wrap, hold: () => (held = true), linking, release };
}

const ACCEPT = [MediaType.ociManifest, MediaType.dockerManifest, MediaType.ociIndex, MediaType.dockerManifestList];

describe('mirrored manifests are answered before they are stored', () => {
  let registry: RegistryProcess;
  let proxy: FaultProxy;
  const image: TestImage = makeImage({ layers: 1, layerSize: 4096 });
  const dirs: string[] = [];

  before(async () => {
    registry = await startRegistry();
    proxy = await startFaultProxy(registry.url);
    await pushImage(registry.url, 'acme/app', '1', image);
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function core(fs: BlobFs, metrics: Metrics = noMetrics, wrapMeta: (m: MetadataStore) => MetadataStore = (m) => m, now: () => number = Date.now) {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-manifest-store-'));
    dirs.push(dir);
    const store = await FsBlobStore.open(join(dir, 'blobs'), { fs });
    const meta = await EmbeddedMetadataStore.open(join(dir, 'meta'));
    const upstream = createUpstream(upstreamConfig(proxy.url, { name: 'hub', default: true }));
    const namespaces = new UpstreamNamespaces([{ name: 'hub', host: new URL(proxy.url).host, aliases: [], default: true, libraryPrefix: false }]);
    const reg = createRegistry({
      store,
      meta: wrapMeta(meta),
      namespaces,
      policy: {
        upstreams: new Map([['hub', { upstream, policy: { tagFreshness: 60_000, notFoundTtl: 60_000, quotaProbeInterval: 30_000, prefetch: 0 } }]]),
        overlay: [],
        localNamespaces: [],
        maxManifestBytes: 4 << 20,
        maxBlobBytes: 1 << 30,
        fetchTimeout: 30_000,
        resumeAttempts: 0,
        tagLists: { maxPages: 100, maxTags: 100_000 },
      },
      metrics,
      logger: silentLogger,
      now,
    });
    return {
      reg,
      store,
      repo: namespaces.resolve('acme/app'),
      async close() {
        await reg.settle();
        await upstream.close();
        await meta.close();
      },
    };
  }

  const manifestGets = (): number => proxy.count({ method: 'GET', path: '/v2/acme/app/manifests/1' }) + proxy.count({ method: 'GET', path: `/v2/acme/app/manifests/${image.manifestDigest}` });

  it('answers while the store is still on the disk; clients meanwhile share the one upstream GET; listings and push checks wait for it', async () => {
    const disk = heldSyncFs('pass');
    const { reg, repo, close } = await core(disk.fs);
    try {
      const before = manifestGets();
      const first = await within(reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT), 10_000, 'the manifest waited for its store');
      await disk.syncing;
      assert.equal(first.descriptor.digest, image.manifestDigest);
      assert.deepEqual(first.bytes, image.manifest);

      const again = await reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT);
      const byDigest = await reg.manifests.get(repo, { kind: 'digest', digest: image.manifestDigest as Digest }, ACCEPT);
      assert.deepEqual([again.descriptor.digest, byDigest.descriptor.digest], [image.manifestDigest, image.manifestDigest]);
      assert.deepEqual([again.outcome, byDigest.outcome], ['hit', 'hit'], 'its bytes were already here: hits, not joins');
      assert.equal(manifestGets() - before, 1, 'one upstream manifest GET for three requests');

      const catalog = reg.catalog.list(undefined, undefined);
      const push = reg.manifests.put(repo, { kind: 'tag', tag: 'mine' }, MediaType.ociManifest, image.manifest);
      push.catch(() => {});
      assert.ok(await stillPending(catalog), 'the catalog answered before the repository was recorded');
      assert.ok(await stillPending(push), 'a push was checked before the repository was recorded as mirrored');
      disk.release();
      assert.deepEqual((await catalog).items, ['acme/app']);
      await assert.rejects(push, (e: unknown) => (e as { code?: string }).code === 'DENIED', 'a push into a mirrored repository');
      const cached = await reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT);
      assert.equal(cached.outcome, 'hit');
      assert.equal(manifestGets() - before, 1);
    } finally {
      disk.release();
      await close();
    }
  });

  it("a tag's freshness counts from the upstream's answer, not from when its store finished", async () => {
    const disk = heldSyncFs('pass');
    let clock = Date.now();
    const { reg, repo, close } = await core(disk.fs, noMetrics, undefined, () => clock);
    const heads = (): number => proxy.count({ method: 'HEAD', path: '/v2/acme/app/manifests/1' });
    try {
      await within(reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT), 10_000, 'the manifest waited for its store');
      await disk.syncing;
      clock += 30_000; // the disk takes its time; tagFreshness is 60 s
      disk.release();
      await reg.settle();
      clock += 31_000; // 61 s after the upstream answered, 31 s after the store finished
      const before = heads();
      const res = await reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT);
      assert.equal(res.descriptor.digest, image.manifestDigest);
      assert.equal(heads() - before, 1, 'past its freshness: revalidated with a HEAD');
    } finally {
      disk.release();
      await close();
    }
  });

  it('shutdown waits for a blob commit that outlived its request', async () => {
    const disk = heldSyncFs('pass', { heldFrom: 'hold' });
    const { reg, repo, store, close } = await core(disk.fs);
    try {
      // The manifest is stored (settle waits for it), then every fsync from here on is held: the blob's commit.
      await reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT);
      await reg.settle();
      disk.hold();
      const layer = image.layers[0]!;
      const body = await reg.blobs.open(repo, layer.digest as Digest, undefined);
      const parts: Buffer[] = [];
      for await (const c of body.stream) parts.push(c as Buffer);
      assert.equal(sha256(Buffer.concat(parts)), layer.digest, 'the client has the whole blob while every fsync is held');
      await disk.syncing;
      const settling = reg.settle();
      assert.ok(await stillPending(settling), 'shutdown would not wait for the blob commit');
      assert.equal(await store.stat(layer.digest as Digest), undefined);
      disk.release();
      await within(settling, 10_000, 'settle() never resolved');
      assert.equal((await store.stat(layer.digest as Digest))?.size, layer.bytes.length, 'the blob is cached once shutdown may proceed');
      assert.ok(await store.stat(image.manifestDigest as Digest), 'the manifest is stored once shutdown may proceed');
    } finally {
      disk.release();
      await close();
    }
  });

  it('a blob committed but not yet linked is served from its download, without asking the upstream again', async () => {
    const links = heldLinks();
    const { reg, repo, store, close } = await core(nodeBlobFs, noMetrics, links.wrap);
    try {
      await reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT);
      await reg.settle();
      links.hold();
      const layer = image.layers[0]!;
      const read = async (): Promise<Buffer> => {
        const parts: Buffer[] = [];
        for await (const c of (await reg.blobs.open(repo, layer.digest as Digest, undefined)).stream) parts.push(c as Buffer);
        return Buffer.concat(parts);
      };
      assert.equal(sha256(await read()), layer.digest);
      await links.linking;
      assert.equal((await store.stat(layer.digest as Digest))?.size, layer.bytes.length, 'committed to the store, its link still being written');
      proxy.reset();
      assert.equal(sha256(await within(read(), 10_000, 'the second client waited for the link')), layer.digest);
      assert.deepEqual(proxy.requests.map((r) => `${r.method} ${r.path}`), [], 'the upstream was asked again for a blob its own download had just proven');
    } finally {
      links.release();
      await close();
    }
  });

  it('a store that fails: the client still gets the manifest, the failure is counted, and the next request fetches it again', async () => {
    const disk = heldSyncFs('fail');
    let writeErrors = 0;
    const { reg, repo, close } = await core(disk.fs, { ...noMetrics, cacheWriteError: () => writeErrors++ });
    try {
      const before = manifestGets();
      const first = await within(reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT), 10_000, 'the manifest waited for its store');
      assert.deepEqual(first.bytes, image.manifest);
      disk.release();
      await reg.settle();
      assert.equal(writeErrors, 1);
      const next = await reg.manifests.get(repo, { kind: 'tag', tag: '1' }, ACCEPT);
      assert.deepEqual(next.bytes, image.manifest);
      assert.equal(next.outcome, 'miss');
      assert.equal(manifestGets() - before, 2);
    } finally {
      disk.release();
      await close();
    }
  });
});
