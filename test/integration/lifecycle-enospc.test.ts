/**
 * A full disk during a miss, on a real 4 MiB tmpfs as the data directory: the client still gets the blob's
 * bytes streamed from upstream, nothing partial is kept, the failure is counted, cached content keeps being
 * served, and an upload that cannot fit answers with an error instead of hanging.
 * Needs root and tmpfs (mount -t tmpfs); skipped with a message otherwise. The injected-fs unit test in
 * test/unit/store-fs-blob.test.ts covers ENOSPC everywhere.
 */
import assert from 'node:assert/strict';
import { access, mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { startRegistry } from '../helpers/registry.js';
import { mountTmpfs, unmountTmpfs } from '../helpers/tmpfs.js';
import { blobFile, describeResponse, filesUnder, startWharf } from '../helpers/wharf.js';


it('ENOSPC during a miss: client gets its bytes, nothing partial kept, cache keeps serving, uploads fail fast', async (t) => {
  const dir = join(tmpdir(), `wharf-enospc-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir);
  const why = await mountTmpfs(dir, '4m');
  if (why !== undefined) {
    await rm(dir, { recursive: true, force: true });
    t.skip(`needs a 4 MiB tmpfs data directory (${why})`);
    return;
  }
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
