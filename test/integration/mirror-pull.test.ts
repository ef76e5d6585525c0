/**
 * Pull-through happy paths against real Distribution upstreams (token, ghcr-like token, Basic),
 * each behind a counting proxy: what clients get, and how many upstream requests it costs.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  blobPath,
  getBlob,
  getManifest,
  pullAndVerify,
  repoPath,
  seen,
  show,
  sleep,
  startBasicUpstream,
  startGhcrUpstream,
  startHubUpstream,
  startMirror,
  type MirrorUpstream,
} from '../helpers/mirror.js';
import { makeImage, makeMultiPlatform, readOciLayout, sha256 } from '../helpers/oci-image.js';
import { pageCacheBytes } from '../helpers/page-cache.js';
import { copy, inspectRaw } from '../helpers/skopeo.js';
import { tempDir } from '../helpers/tmp.js';
import { blobFile, errorCodes, waitOnDisk, type WharfProcess } from '../helpers/wharf.js';

let hub: MirrorUpstream;
let ghcr: MirrorUpstream;
let basic: MirrorUpstream;
let w: WharfProcess;

before(async () => {
  [hub, ghcr, basic] = await Promise.all([startHubUpstream({ tagFreshness: '2s' }), startGhcrUpstream(), startBasicUpstream()]);
  w = await startMirror([hub.config(), ghcr.config(), basic.config()]);
});
after(async () => {
  await w?.stop();
  await Promise.all([hub?.stop(), ghcr?.stop(), basic?.stop()]);
});

/** Requests the proxy recorded after `mark` (a previous `requests.length`) for one repository. */
function since(u: MirrorUpstream, mark: number, repo: string) {
  return u.proxy.requests.slice(mark).filter((r) => repoPath(repo).test(r.path));
}

describe('skopeo pulls through wharf from each kind of upstream', () => {
  const cases: Array<{ what: string; up: () => MirrorUpstream; ref: (host: string) => string; repo: string; index: boolean }> = [
    { what: 'token upstream, default namespace', up: () => hub, ref: (h) => `${h}/acme/tool:1.0`, repo: 'acme/tool', index: false },
    { what: 'ghcr-like upstream, path prefix', up: () => ghcr, ref: (h) => `${h}/ghcr.test/acme/tool:1.0`, repo: 'acme/tool', index: true },
    { what: 'Basic-auth upstream, path prefix', up: () => basic, ref: (h) => `${h}/basic.test/acme/tool:1.0`, repo: 'acme/tool', index: false },
  ];
  for (const c of cases) {
    it(`${c.what}: manifest bytes and layer digests as pushed`, async (t) => {
      const up = c.up();
      const x = c.index ? makeMultiPlatform({ format: 'oci', layers: 2 }) : makeImage({ format: 'docker', layers: 2 });
      await up.push(c.repo, '1.0', x);
      const dst = await tempDir();
      t.after(() => dst.cleanup());

      const src = `docker://${c.ref(w.host)}`;
      const top = 'images' in x ? x.bytes : x.manifest;
      assert.deepEqual(await inspectRaw(src), top, 'manifest bytes served by wharf = bytes pushed upstream');
      await copy(src, `oci:${dst.path}:x`, { all: true });
      const back = await readOciLayout(dst.path, 'x');
      if ('images' in x) assert.equal(back.digest, x.digest, 'an OCI index is copied unchanged');
      // a Docker config is re-serialised by the oci: conversion (DESIGN), so layers are compared by file
      const layers = ('images' in x ? x.images : [x]).flatMap((img) => img.layers);
      for (const b of layers) {
        const got = await readFile(join(dst.path, 'blobs', 'sha256', b.digest.slice(7)));
        assert.equal(sha256(got), b.digest, `layer ${b.digest}`);
      }
      assert.ok(up.proxy.count({ method: 'GET', path: repoPath(c.repo) }) > 0, 'the content came through the upstream proxy');
    });
  }

  it('a direct HTTP client with ?ns= pulls from each upstream (cold), digests verified', async () => {
    for (const up of [hub, ghcr, basic]) {
      const x = makeImage({ layers: 2 });
      await up.push('acme/ns-tool', 'v1', x);
      await pullAndVerify(w, 'acme/ns-tool', 'v1', x, { ns: up.alias });
      assert.ok(up.proxy.count({ method: 'GET', path: blobPath('acme/ns-tool', x.layers[0]!.digest) }) >= 1, `${up.name}: fetched from it`);
    }
    // the docker.io profile answers for its own registry host too
    const y = makeImage();
    await hub.push('library/busybox', '1', y);
    await pullAndVerify(w, 'busybox', '1', y, { ns: 'docker.io' });
  });
});

describe('coalescing and freshness', () => {
  it('8 concurrent cold pulls: each blob fetched from upstream exactly once, all 8 get correct bytes', async () => {
    const x = makeImage({ layers: 3, layerSize: 512 * 1024 });
    await hub.push('acme/crowd', '1', x);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => pullAndVerify(w, 'acme/crowd', '1', x)));
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`client ${i}: ${(r.reason as Error).message}`] : []));
    assert.deepEqual(failed, [], 'every client got the right bytes');
    for (const b of [x.config, ...x.layers]) {
      const n = hub.proxy.count({ method: 'GET', path: blobPath('acme/crowd', b.digest) });
      assert.equal(n, 1, `upstream GETs of ${b.digest}:\n${seen(hub.proxy, { path: repoPath('acme/crowd') })}`);
    }
    // the tag is resolved once too (each manifest GET counts against Docker Hub's pull limit)
    assert.equal(hub.proxy.count({ method: 'GET', path: '/v2/acme/crowd/manifests/1' }), 1, seen(hub.proxy, { path: repoPath('acme/crowd') }));
  });

  it('warm pulls within the freshness window make no upstream request; after it only a HEAD for the tag', async () => {
    const x = makeMultiPlatform({ layers: 1 });
    await hub.push('acme/warm', '1', x);
    await pullAndVerify(w, 'acme/warm', '1', x);

    let mark = hub.proxy.requests.length;
    await pullAndVerify(w, 'acme/warm', '1', x);
    await pullAndVerify(w, 'acme/warm', x.digest, x);
    assert.deepEqual(since(hub, mark, 'acme/warm'), [], 'warm pull inside the window: zero upstream requests');

    await sleep(2300); // tagFreshness 2s
    mark = hub.proxy.requests.length;
    await pullAndVerify(w, 'acme/warm', '1', x);
    const after = since(hub, mark, 'acme/warm');
    assert.ok(after.length >= 1, 'the stale tag was revalidated');
    const other = after.filter((r) => !(r.method === 'HEAD' && r.path === '/v2/acme/warm/manifests/1'));
    assert.deepEqual(other.map((r) => `${r.method} ${r.path}`), [], 'after the window: only HEADs of the tag manifest');
  });

  it('HEAD on an uncached blob asks the upstream: 200 with the right Content-Length', async () => {
    const x = makeImage({ layers: 1, layerSize: 10_000 });
    await hub.push('acme/headonly', '1', makeImage({ layers: 1 }));
    await hub.push('acme/headonly', '2', x);
    const layer = x.layers[0]!;
    // As every client does, the pull starts with a manifest (tag 1's: prefetch fetches its blobs, not tag 2's
    // layer, which stays uncached).
    assert.equal((await getManifest(w, 'acme/headonly', '1')).status, 200);
    const res = await getBlob(w, 'acme/headonly', layer.digest, { method: 'HEAD' });
    assert.equal(res.status, 200, show(res));
    assert.equal(res.headers['content-length'], String(layer.bytes.length));
    assert.equal(res.headers['docker-content-digest'], layer.digest);
    assert.ok(hub.proxy.count({ method: 'HEAD', path: blobPath('acme/headonly', layer.digest) }) >= 1, seen(hub.proxy, { path: repoPath('acme/headonly') }));

    const missing = sha256('never pushed anywhere');
    const gone = await getBlob(w, 'acme/headonly', missing, { method: 'HEAD' });
    assert.equal(gone.status, 404, `a blob the upstream does not have: ${show(gone)}`);
  });

  it('Range on a cold blob: 206 with the right bytes, one upstream GET even with a full GET at the same time', async () => {
    const x = makeImage({ layers: 2, layerSize: 1024 * 1024 });
    await hub.push('acme/range', '1', x);
    const [a, b] = x.layers as [typeof x.layers[0], typeof x.layers[0]];

    const [part, full] = await Promise.all([
      getBlob(w, 'acme/range', a.digest, { headers: { range: 'bytes=1000-1999' } }),
      getBlob(w, 'acme/range', a.digest),
    ]);
    assert.equal(part.status, 206, show(part));
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${a.bytes.length}`);
    assert.deepEqual(part.body, a.bytes.subarray(1000, 2000));
    assert.equal(full.status, 200, show(full));
    assert.equal(sha256(full.body), a.digest);
    assert.equal(hub.proxy.count({ method: 'GET', path: blobPath('acme/range', a.digest) }), 1, seen(hub.proxy, { path: repoPath('acme/range') }));

    // a Range alone on a cold blob, then the whole blob: still one upstream GET
    const tail = await getBlob(w, 'acme/range', b.digest, { headers: { range: 'bytes=-100' } });
    assert.equal(tail.status, 206, show(tail));
    assert.deepEqual(tail.body, b.bytes.subarray(b.bytes.length - 100));
    await sleep(200);
    const whole = await getBlob(w, 'acme/range', b.digest);
    assert.equal(sha256(whole.body), b.digest);
    assert.equal(hub.proxy.count({ method: 'GET', path: blobPath('acme/range', b.digest) }), 1, seen(hub.proxy, { path: repoPath('acme/range') }));
  });
});

describe('large layers', () => {
  it('skopeo gets a 48 MiB layer intact, and wharf leaves at most its first 16 MiB in the page cache (direct writes)', async (t) => {
    const started = /"directWrites":\{"enabled":(true|false),"reason":"([^"]*)"/.exec(w.logs());
    assert.ok(started, 'the start-up log line says whether direct writes are in use');
    if (started[1] !== 'true') return t.skip(`direct writes are off here: ${started[2]}`);
    const x = makeImage({ format: 'docker', layers: 1, layerSize: 48 * 1024 * 1024 });
    await hub.push('acme/big', '1', x);
    const dst = await tempDir();
    t.after(() => dst.cleanup());
    await copy(`docker://${w.host}/acme/big:1`, `dir:${dst.path}`);
    const layer = x.layers[0]!;
    assert.equal(sha256(await readFile(join(dst.path, layer.digest.slice(7)))), layer.digest);
    await waitOnDisk(w.dataDir, [layer.digest]);
    const resident = await pageCacheBytes(blobFile(w.dataDir, layer.digest));
    assert.ok(resident <= 20 * 1024 * 1024, `${resident} of the layer's ${layer.bytes.length} bytes are in the page cache: written through it, or read back from the file instead of served from memory`);
  });
});

describe('one repository, many names (docker.io profile as the default upstream)', () => {
  it('alpine, library/alpine, docker.io/library/alpine and ?ns=docker.io: pulled once, then hits', async () => {
    const x = makeImage({ format: 'docker', layers: 2 });
    await hub.push('library/alpine', '3.19', x);
    await pullAndVerify(w, 'alpine', '3.19', x);
    assert.ok(hub.proxy.count({ path: repoPath('library/alpine') }) > 0, 'fetched upstream as library/alpine');
    assert.equal(hub.proxy.count({ path: repoPath('alpine') }), 0, 'never asked upstream for a one-segment name');

    const mark = hub.proxy.requests.length;
    await pullAndVerify(w, 'library/alpine', '3.19', x);
    await pullAndVerify(w, 'docker.io/library/alpine', '3.19', x);
    await pullAndVerify(w, 'alpine', '3.19', x, { ns: 'docker.io' });
    await pullAndVerify(w, 'library/alpine', '3.19', x, { ns: 'docker.io' });
    await pullAndVerify(w, 'alpine', x.manifestDigest, x, { ns: 'docker.io' });
    const extra = hub.proxy.requests.slice(mark);
    assert.deepEqual(extra.map((r) => `${r.method} ${r.path}`), [], 'the other names are cache hits: zero upstream requests');
  });

  it('a path prefix that names no configured upstream is NAME_UNKNOWN (and is not the default upstream)', async () => {
    const res = await getManifest(w, 'quay.example/acme/tool', '1');
    assert.equal(res.status, 404, show(res));
    assert.deepEqual(errorCodes(res), ['NAME_UNKNOWN']);
    assert.equal(hub.proxy.count({ path: /quay\.example/ }), 0);
  });
});
