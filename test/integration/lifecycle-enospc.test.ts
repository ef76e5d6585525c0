/**
 * A full disk during a miss, on a real 4 MiB tmpfs as the data directory: the client still gets the blob's
 * bytes streamed from upstream, nothing partial is kept, the failure is counted, cached content keeps being
 * served, and an upload that cannot fit answers with an error instead of hanging.
 * Needs root and tmpfs (mount -t tmpfs); skipped with a message otherwise. The injected-fs unit test in
 * test/unit/store-fs-blob.test.ts covers ENOSPC everywhere.
 */
import assert from 'node:assert/strict';
import { access, open, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { it } from 'node:test';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry } from '../helpers/registry.js';
import { smallDisk, unmountTmpfs } from '../helpers/tmpfs.js';
import { blobFile, describeResponse, errorCodes, filesUnder, startWharf } from '../helpers/wharf.js';


it('ENOSPC during a miss: client gets its bytes, nothing partial kept, cache keeps serving, uploads fail fast', async (t) => {
  const dir = await smallDisk(t, 'wharf-enospc', '4m');
  if (dir === undefined) return;
  const registry = await startRegistry();
  const proxy = await startFaultProxy(registry.url);
  let w: Awaited<ReturnType<typeof startWharf>> | undefined;
  try {
    w = await startWharf({ dataDir: dir, config: { upstreams: [{ name: 'hub', url: proxy.url, default: true, tagFreshness: '1h' }] } });

    const small = makeImage({ layers: 1, layerSize: 64 * 1024 });
    const big = makeImage({ layers: 1, layerSize: 6 * 1024 * 1024 });
    await pushImage(registry.url, 'acme/small', '1', small);
    await pushImage(registry.url, 'acme/big', '1', big);

    // Cached content first.
    const m = await request(`${w.url}/v2/acme/small/manifests/1`, { headers: { accept: manifestAccept } });
    assert.equal(m.status, 200, describeResponse(m));
    for (const b of [small.config, ...small.layers]) {
      const res = await request(`${w.url}/v2/acme/small/blobs/${b.digest}`);
      assert.equal(sha256(res.body), b.digest);
    }

    // A blob bigger than the whole disk.
    const layer = big.layers[0]!;
    const res = await request(`${w.url}/v2/acme/big/blobs/${layer.digest}`, { timeoutMs: 60_000 });
    assert.equal(res.status, 200, describeResponse(res));
    assert.equal(res.body.length, layer.bytes.length, 'every byte arrived');
    assert.equal(sha256(res.body), layer.digest, 'the bytes are the blob');

    // Nothing partial kept: no committed blob, and the temp file goes once the fetch is over.
    const bigFile = blobFile(dir, layer.digest);
    assert.equal(await access(bigFile).then(() => true, () => false), false, 'not under blobs/');
    let temps = await filesUnder(join(dir, 'tmp'));
    for (let i = 0; i < 40 && temps.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      temps = await filesUnder(join(dir, 'tmp'));
    }
    assert.deepEqual(temps, [], 'no temp file left');

    const metrics = await request(`${w.url}/metrics`);
    const written = /^wharf_cache_write_errors_total(?:\{[^}]*\})? (\d+)/m.exec(metrics.body.toString('utf8'));
    assert.ok(written && Number(written[1]) >= 1, `the failed cache write is counted:\n${metrics.body.toString('utf8').split('\n').filter((l) => l.includes('write_error')).join('\n')}`);

    // Cached content is still served, without asking upstream.
    const mark = proxy.requests.length;
    const again = await request(`${w.url}/v2/acme/small/manifests/1`, { headers: { accept: manifestAccept } });
    assert.deepEqual(again.body, small.manifest);
    for (const b of [small.config, ...small.layers]) {
      const r = await request(`${w.url}/v2/acme/small/blobs/${b.digest}`);
      assert.equal(r.status, 200, describeResponse(r));
      assert.equal(sha256(r.body), b.digest);
    }
    assert.equal(proxy.requests.length, mark, 'no upstream request for cached content');

    // An upload that cannot fit answers (an error) instead of hanging.
    const data = randomBytes(5 * 1024 * 1024);
    const up = await request(`${w.url}/v2/team/upload/blobs/uploads/?digest=${sha256(data)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: data,
      timeoutMs: 20_000,
    });
    assert.ok(up.status >= 500, `upload answered with a server error: ${describeResponse(up)}`);
    assert.equal(await access(blobFile(dir, sha256(data))).then(() => true, () => false), false, 'nothing committed');
    const ping = await request(`${w.url}/v2/`);
    assert.equal(ping.status, 200, 'still serving');
  } finally {
    await w?.stop();
    await proxy.stop();
    await registry.stop();
    await unmountTmpfs(dir);
    await rm(dir, { recursive: true, force: true });
  }
});

/** Writes `path` until the file system refuses (ENOSPC): not one free page is left. */
async function fillDisk(path: string): Promise<void> {
  const fh = await open(path, 'w');
  const chunk = Buffer.alloc(4096, 1);
  try {
    for (;;) await fh.write(chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    await fh.close();
  }
}

/** The same config and layer as `img` under another manifest (its bytes differ by an annotation). */
function sibling(img: TestImage): Buffer {
  const m = JSON.parse(img.manifest.toString()) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ ...m, annotations: { 'org.example.sibling': '1' } }));
}

it('ENOSPC on the metadata journal: a tag DELETE or manifest PUT answered 507 changes nothing, before and after a crash', async (t) => {
  const dir = await smallDisk(t, 'wharf-enospc-meta', '8m');
  if (dir === undefined) return;
  const dataDir = join(dir, 'data');
  const filler = join(dir, 'filler');
  let w: Awaited<ReturnType<typeof startWharf>> | undefined;
  try {
    w = await startWharf({ dataDir, config: { upstreams: [] } });
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'team/x', 'k52', img);
    await pushImage(w.url, 'team/x', 'keep', img);
    // team/y links the same blobs under another manifest, so pushing img's manifest there needs one new link.
    const other = sibling(img);
    await pushImage(w.url, 'team/y', 'base', { ...img, manifest: other, manifestDigest: sha256(other) });

    // A graceful restart folds the journal into the snapshot: it starts empty, so its next line needs a new
    // page of the file system, and once the disk is full that line cannot be written.
    await w.restart();
    const journal = join(dataDir, 'meta', 'journal.log');
    assert.equal((await stat(journal)).size, 0, 'the journal starts empty');
    await fillDisk(filler);

    const visible = async (label: string): Promise<void> => {
      const got = await request(`${w!.url}/v2/team/x/manifests/k52`, { headers: { accept: manifestAccept } });
      assert.equal(got.status, 200, `${label}: GET k52 ${describeResponse(got)}`);
      const tags = await request(`${w!.url}/v2/team/x/tags/list`);
      assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['k52', 'keep'], `${label}: tags/list`);
      const y = await request(`${w!.url}/v2/team/y/manifests/${img.manifestDigest}`, { headers: { accept: manifestAccept } });
      assert.equal(y.status, 404, `${label}: img's manifest not linked into team/y ${describeResponse(y)}`);
      const ytags = await request(`${w!.url}/v2/team/y/tags/list`);
      assert.deepEqual(JSON.parse(ytags.body.toString()).tags, ['base'], `${label}: team/y tags/list`);
    };

    const del = await request(`${w.url}/v2/team/x/manifests/k52`, { method: 'DELETE' });
    assert.equal(del.status, 507, describeResponse(del));
    const failedPut = await request(`${w.url}/v2/team/y/manifests/k53`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
    assert.equal(failedPut.status, 507, describeResponse(failedPut));
    assert.deepEqual(errorCodes(failedPut), ['UNAVAILABLE']);
    await visible('after the 507s');

    // A crash, space freed, a restart: what the clients were told did not happen still has not.
    await w.kill();
    await rm(filler);
    await w.restart();
    await visible('after kill -9 and a restart');

    // And with space, the same requests now work.
    const del2 = await request(`${w.url}/v2/team/x/manifests/k52`, { method: 'DELETE' });
    assert.equal(del2.status, 202, describeResponse(del2));
    const gone = await request(`${w.url}/v2/team/x/manifests/k52`, { headers: { accept: manifestAccept } });
    assert.equal(gone.status, 404, describeResponse(gone));
  } finally {
    await w?.stop();
    await rm(filler, { force: true });
    await unmountTmpfs(dir);
    await rm(dir, { recursive: true, force: true });
  }
});
