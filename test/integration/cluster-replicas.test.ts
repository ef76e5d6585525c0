/**
 * Two wharf processes sharing one data dir and one Redis, in front of one real Distribution registry
 * (behind a counting fault proxy, and a throttle that makes blob bodies arrive slowly).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request, type HttpResponse } from '../helpers/http.js';
import { makeImage, makeMultiPlatform, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { startTcpDelay } from '../helpers/tcp-delay.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { storedBytes } from '../helpers/test-storage.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { deleteKeys, REDIS_URL, sleep, startThrottle, testPrefix, type Throttle } from './cluster-helpers.js';

let registry: RegistryProcess;
let proxy: FaultProxy;
let throttle: Throttle;
let config: Record<string, unknown> & { redis: { url: string; keyPrefix: string } };
let dataDir: string;
let shared: TempDir;
let a: WharfProcess;
let b: WharfProcess;
const keyPrefix = testPrefix();

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  // ~64 KiB socket chunks every 15 ms: a 4 MiB layer takes about a second to arrive.
  throttle = await startThrottle(proxy.url, 15);
  shared = await tempDir('wharf-cluster-');
  config = {
    upstreams: [{ name: 'up', url: throttle.url, default: true, aliases: ['up.test'], tagFreshness: '1s' }],
    redis: { url: REDIS_URL, keyPrefix },
    log: { level: 'info' },
  };
  dataDir = `${shared.path}/data`;
  [a, b] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await throttle?.stop();
  await proxy?.stop();
  await registry?.stop();
  await shared?.cleanup();
  await deleteKeys(REDIS_URL, keyPrefix);
});

const getBlob = (w: WharfProcess, repo: string, digest: string): Promise<HttpResponse> => request(`${w.url}/v2/${repo}/blobs/${digest}`, { timeoutMs: 60_000 });
const getManifest = (w: WharfProcess, repo: string, ref: string, method = 'GET'): Promise<HttpResponse> =>
  request(`${w.url}/v2/${repo}/manifests/${ref}`, { method, headers: { accept: manifestAccept } });

function blobGets(repo: string, digest: string): number {
  return proxy.count({ method: 'GET', path: `/v2/${repo}/blobs/${digest}` });
}

/** A docker-like pull against one replica: manifest by tag, then config and layers, each checked. */
async function pull(w: WharfProcess, repo: string, tag: string, img: TestImage): Promise<void> {
  const m = await getManifest(w, repo, tag);
  assert.equal(m.status, 200, `manifest on ${w.url}: ${describeResponse(m)}`);
  assert.equal(sha256(m.body), img.manifestDigest);
  await Promise.all(
    [img.config, ...img.layers].map(async (blob) => {
      const res = await getBlob(w, repo, blob.digest);
      assert.equal(res.status, 200, `blob ${blob.digest} on ${w.url}: ${describeResponse(res)}`);
      assert.equal(sha256(res.body), blob.digest, `bytes of ${blob.digest} from ${w.url}`);
    }),
  );
}

describe('wharf replicas sharing Redis and a data dir', () => {
  it('8 concurrent cold pulls split across both replicas fetch each blob from upstream once', async () => {
    const repo = 'team/cold';
    const img = makeImage({ layers: 2, layerSize: 4 << 20 });
    await pushImage(registry.url, repo, 'v1', img);
    proxy.reset();
    // The first blob fetch waits a moment for its headers, so every replica's requests arrive while it runs.
    proxy.inject({ match: { method: 'GET', path: /\/blobs\// }, times: 3, action: { kind: 'delay', ms: 400 } });
    await Promise.all(Array.from({ length: 8 }, (_, i) => pull(i % 2 === 0 ? a : b, repo, 'v1', img)));
    proxy.clearFaults();
    for (const blob of [img.config, ...img.layers]) {
      assert.equal(blobGets(repo, blob.digest), 1, `upstream GETs of ${blob.digest}`);
    }
    // Both replicas now serve it from the shared store without asking upstream again.
    const before = proxy.count({ method: 'GET', path: /\/blobs\// });
    await Promise.all([pull(a, repo, 'v1', img), pull(b, repo, 'v1', img)]);
    assert.equal(proxy.count({ method: 'GET', path: /\/blobs\// }), before);
  });

  it('8 concurrent cold pulls of one tag through both replicas cost one upstream manifest GET per manifest', async () => {
    const repo = 'team/one-get';
    const index = makeMultiPlatform({ layers: 1 });
    await pushImage(registry.url, repo, 'v1', index);
    proxy.reset();
    // Manifest answers take a moment, so both replicas' first fetches are in flight at once.
    proxy.inject({ match: { method: 'GET', path: /\/manifests\// }, times: 4, action: { kind: 'delay', ms: 400 } });
    const child = index.images[0]!;
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const w = i % 2 === 0 ? a : b;
        const top = await getManifest(w, repo, 'v1');
        assert.equal(top.status, 200, `index on ${w.url}: ${describeResponse(top)}`);
        assert.equal(sha256(top.body), index.digest);
        const m = await getManifest(w, repo, child.manifestDigest);
        assert.equal(m.status, 200, `child manifest on ${w.url}: ${describeResponse(m)}`);
        assert.equal(sha256(m.body), child.manifestDigest);
      }),
    );
    proxy.clearFaults();
    assert.equal(proxy.count({ method: 'GET', path: `/v2/${repo}/manifests/v1` }), 1, 'upstream GETs of the tag');
    assert.equal(proxy.count({ method: 'GET', path: `/v2/${repo}/manifests/${child.manifestDigest}` }), 1, 'upstream GETs of the child manifest');
  });

  it('a range request on one replica is served while the other is still fetching the blob', async () => {
    const repo = 'team/range';
    const img = makeImage({ layers: 1, layerSize: 4 << 20 });
    await pushImage(registry.url, repo, 'v1', img);
    const layer = img.layers[0]!;
    assert.equal((await getManifest(a, repo, 'v1')).status, 200);
    assert.equal((await getManifest(b, repo, 'v1')).status, 200);
    const full = getBlob(a, repo, layer.digest);
    await sleep(300); // a holds the lease and is streaming by now
    const part = await request(`${b.url}/v2/${repo}/blobs/${layer.digest}`, { headers: { range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206, describeResponse(part));
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${layer.bytes.length}`);
    assert.deepEqual(part.body, layer.bytes.subarray(1000, 2000));
    assert.equal(sha256((await full).body), layer.digest);
    assert.equal(blobGets(repo, layer.digest), 1);
    // b streamed it from a's download (a's access log), instead of waiting for the commit.
    assert.match(a.logs(), /"route":"peer_inflight_blob","status":206/);
  });

  it('a chunked upload spread across both replicas (POST A, PATCH B, PATCH A, PUT B) completes and verifies', async () => {
    const repo = 'team/upload';
    const bytes = Buffer.concat([Buffer.alloc(300_000, 1), Buffer.alloc(200_000, 2), Buffer.alloc(100_000, 3)]);
    const digest = sha256(bytes);
    const post = await request(`${a.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    assert.equal(post.status, 202, describeResponse(post));
    const path = new URL(post.headers.location ?? '', a.url).pathname;
    const patch = async (w: WharfProcess, start: number, end: number): Promise<void> => {
      const res = await request(`${w.url}${path}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${start}-${end - 1}` },
        body: bytes.subarray(start, end),
      });
      assert.equal(res.status, 202, `PATCH ${start}-${end - 1} on ${w.url}: ${describeResponse(res)}`);
      assert.equal(res.headers.range, `0-${end - 1}`);
    };
    await patch(b, 0, 300_000);
    await patch(a, 300_000, 500_000);
    const put = await request(`${b.url}${path}?digest=${digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes.subarray(500_000),
    });
    assert.equal(put.status, 201, describeResponse(put));
    assert.equal(put.headers['docker-content-digest'], digest);
    for (const w of [a, b]) {
      const res = await getBlob(w, repo, digest);
      assert.equal(res.status, 200, describeResponse(res));
      assert.equal(sha256(res.body), digest);
    }
  });

  it('a tag past its freshness window requested on both replicas costs one upstream HEAD', async () => {
    const repo = 'team/reval';
    const img = makeImage({ layers: 1 });
    await pushImage(registry.url, repo, 'latest', img);
    assert.equal((await getManifest(a, repo, 'latest')).status, 200);
    await sleep(1500); // tagFreshness is 1s
    const path = `/v2/${repo}/manifests/latest`;
    const heads = proxy.count({ method: 'HEAD', path });
    const gets = proxy.count({ method: 'GET', path });
    const all = await Promise.all(Array.from({ length: 6 }, (_, i) => getManifest(i % 2 === 0 ? a : b, repo, 'latest')));
    for (const res of all) {
      assert.equal(res.status, 200, describeResponse(res));
      assert.equal(sha256(res.body), img.manifestDigest);
    }
    assert.equal(proxy.count({ method: 'HEAD', path }) - heads, 1, 'one HEAD for the whole cluster');
    assert.equal(proxy.count({ method: 'GET', path }) - gets, 0, 'digest unchanged: no GET');
  });

  it('a tag moved through one replica is not served old by the other after the change', async (t) => {
    // A third replica C reaches Redis through a relay that can slow what C sends, as a congested link or a
    // busy Redis would.
    const redisUrl = new URL(REDIS_URL);
    const cRedisLink = await startTcpDelay({ host: redisUrl.hostname, port: Number(redisUrl.port || 6379) });
    let c: WharfProcess | undefined;
    t.after(async () => {
      await c?.stop();
      await cRedisLink.stop();
    });
    redisUrl.host = cRedisLink.address;
    c = await startWharf({ config: { ...config, redis: { ...config.redis, url: redisUrl.toString() } }, dataDir });
    const name = (x: WharfProcess): string => (x === a ? 'A' : 'C');

    const repo = 'team/moved';
    const one = makeImage({ layers: 1 });
    const two = makeImage({ layers: 1 });
    // A local repository: pushes through wharf change the tag immediately.
    await pushImage(a.url, repo, 'v', one);
    await pushImage(c.url, repo, 'staged', two);
    const tagOn = async (x: WharfProcess): Promise<string> => {
      const res = await getManifest(x, repo, 'v');
      assert.equal(res.status, 200, `${name(x)}: ${describeResponse(res)}`);
      return sha256(res.body);
    };
    for (const x of [a, c]) assert.equal(await tagOn(x), one.manifestDigest, 'both replicas hold v = one in memory');
    // What C sends Redis now takes 300 ms to arrive: the news of the move must reach A before C says "pushed".
    cRedisLink.delayMs = 300;
    try {
      const put = await request(`${c.url}/v2/${repo}/manifests/v`, { method: 'PUT', headers: { 'content-type': two.mediaType }, body: two.manifest });
      assert.equal(put.status, 201, describeResponse(put));
      assert.equal(await tagOn(a), two.manifestDigest, 'tag on A right after the push to C');
    } finally {
      cRedisLink.delayMs = 0;
    }
    assert.equal(await tagOn(c), two.manifestDigest, 'tag on C after the push to C');
    const back = await request(`${a.url}/v2/${repo}/manifests/v`, { method: 'PUT', headers: { 'content-type': one.mediaType }, body: one.manifest });
    assert.equal(back.status, 201, describeResponse(back));
    for (const x of [c, a]) assert.equal(await tagOn(x), one.manifestDigest, `tag on ${name(x)} after the push back to A`);
  });

  it('a 429 seen by one replica holds back manifest GETs on the other until Retry-After', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(registry.url, 'team/limited', 'v1', img);
    await pushImage(registry.url, 'team/limited2', 'v1', img);
    proxy.inject({ match: { method: 'GET', path: /\/manifests\// }, times: 1, action: { kind: 'status', status: 429, headers: { 'Retry-After': '2' } } });
    const first = await getManifest(a, 'team/limited', 'v1');
    assert.equal(first.status, 429, describeResponse(first));
    const mark = proxy.count({ method: 'GET', path: /\/manifests\// });
    const other = await getManifest(b, 'team/limited2', 'v1');
    assert.equal(other.status, 429, `replica B must know of A's 429: ${describeResponse(other)}`);
    assert.ok(Number(other.headers['retry-after']) >= 1, 'Retry-After carried');
    assert.equal(proxy.count({ method: 'GET', path: /\/manifests\// }), mark, 'B sent no manifest GET while throttled');
    await sleep(2100);
    const later = await getManifest(b, 'team/limited2', 'v1');
    assert.equal(later.status, 200, `after Retry-After: ${describeResponse(later)}`);
  });

  it('SIGKILL of the replica holding the lease mid-fetch: the other completes the pull, no partial blob ever visible', async () => {
    const repo = 'team/kill';
    const img = makeImage({ layers: 1, layerSize: 12 << 20 });
    await pushImage(registry.url, repo, 'v1', img);
    const layer = img.layers[0]!;
    assert.equal((await getManifest(a, repo, 'v1')).status, 200);
    assert.equal((await getManifest(b, repo, 'v1')).status, 200);
    proxy.inject({ match: { method: 'GET', path: `/v2/${repo}/blobs/${layer.digest}` }, times: 1, action: { kind: 'delay', ms: 1000 } });

    // Whenever the committed file (or object) exists, it holds exactly the blob.
    const committed = (): Promise<Buffer | undefined> => storedBytes(a.dataDir, layer.digest);
    let watching = true;
    let checks = 0;
    const watcher = (async () => {
      while (watching) {
        const bytes = await committed();
        if (bytes) {
          checks++;
          assert.equal(createHash('sha256').update(bytes).digest('hex'), layer.digest.slice(7), 'committed blob file is complete');
        }
        await sleep(20);
      }
    })();

    const onA = getBlob(a, repo, layer.digest).catch((e: Error) => e);
    await sleep(1500); // a holds the lease and is receiving the body slowly
    assert.equal(blobGets(repo, layer.digest), 1);
    const onB = getBlob(b, repo, layer.digest).catch((e: Error) => e);
    await sleep(200);
    await a.kill();
    await onA;
    // b was streaming from a (cut now) or waiting; either way a retry on b must succeed once a's lease expires.
    let res = await onB;
    const deadline = Date.now() + 45_000;
    while (res instanceof Error || res.status !== 200 || sha256(res.body) !== layer.digest) {
      assert.ok(Date.now() < deadline, `b never completed the pull: ${res instanceof Error ? res.message : describeResponse(res)}`);
      await sleep(250);
      res = await getBlob(b, repo, layer.digest).catch((e: Error) => e);
    }
    // b's client has every byte; the commit (verify, fsync, rename) follows.
    for (let i = 0; i < 100 && checks === 0; i++) await sleep(50);
    watching = false;
    await watcher;
    assert.ok(checks > 0, 'the committed blob was observed');
    assert.equal(sha256((await committed()) ?? Buffer.alloc(0)), layer.digest);
    assert.ok(blobGets(repo, layer.digest) <= 2, 'a second upstream fetch only after the holder died');
    await a.restart();
    const again = await getBlob(a, repo, layer.digest);
    assert.equal(sha256(again.body), layer.digest);
    assert.ok(blobGets(repo, layer.digest) <= 2);
  });
});
