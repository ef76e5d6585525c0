/**
 * A warm blob GET on object storage (a real S3: OpenStack Swift's s3api) costs one GetObject, no HeadObject
 * first: the link knows the size and the GET answers "absent" itself. Safety around it: an object removed behind
 * wharf's back (link still there) is fetched again from the upstream, never answered short or 404; with
 * `redirect: true` wharf still looks before it sends a client to the bucket.
 */
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { startSwiftS3, type SwiftS3 } from '../helpers/swift-s3.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, waitIdle, type WharfProcess } from '../helpers/wharf.js';

const BUCKET = 'wharf-warm-get';
const ACCEPT = { accept: 'application/vnd.oci.image.manifest.v1+json' };

let swift: SwiftS3;
let registry: RegistryProcess;
let dirs: TempDir;
let plain: WharfProcess;
let redirecting: WharfProcess;

function config(prefix: string, redirect: boolean): Record<string, unknown> {
  return {
    upstreams: [{ name: 'up', url: registry.url, default: true }],
    storage: { s3: { endpoint: swift.endpoint, bucket: BUCKET, prefix, forcePathStyle: true, accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey, partSize: '5MiB', redirect } },
  };
}

before(async () => {
  [swift, registry] = await Promise.all([startSwiftS3(), startRegistry()]);
  await swift.createBucket(BUCKET);
  dirs = await tempDir('wharf-s3-warm-get-');
  plain = await startWharf({ config: config('plain/', false), dataDir: `${dirs.path}/plain` });
  redirecting = await startWharf({ config: config('redirect/', true), dataDir: `${dirs.path}/redirect` });
});

after(async () => {
  await plain?.stop();
  await redirecting?.stop();
  await registry?.stop();
  await swift?.stop();
  await dirs?.cleanup();
});

/** `wharf_storage_requests_total` summed by operation. */
async function storageRequests(w: WharfProcess): Promise<Map<string, number>> {
  const m = await request(`${w.url}/metrics`);
  assert.equal(m.status, 200);
  const out = new Map<string, number>();
  for (const x of m.body.toString('utf8').matchAll(/^wharf_storage_requests_total\{([^}]*)\} (\S+)$/gm)) {
    const op = /op="([^"]+)"/.exec(x[1]!)![1]!;
    out.set(op, (out.get(op) ?? 0) + Number(x[2]));
  }
  return out;
}

async function requestsDuring(w: WharfProcess, fn: () => Promise<void>): Promise<Record<string, number>> {
  const before = await storageRequests(w);
  await fn();
  const after = await storageRequests(w);
  return Object.fromEntries([...after].map(([op, n]) => [op, n - (before.get(op) ?? 0)]).filter(([, n]) => n !== 0));
}

/** Pulls the image's manifest and layer through `w` and waits until the layer is committed and linked. */
async function warm(w: WharfProcess, repo: string, img: TestImage): Promise<void> {
  await pushImage(registry.url, repo, 'v1', img);
  const m = await request(`${w.url}/v2/${repo}/manifests/v1`, { headers: ACCEPT });
  assert.equal(m.status, 200, describeResponse(m));
  const got = await request(`${w.url}/v2/${repo}/blobs/${img.layers[0]!.digest}`);
  assert.equal(sha256(got.body), img.layers[0]!.digest);
  await waitIdle(w);
}

async function removeBehindWharf(prefix: string, digest: string): Promise<void> {
  const hex = digest.slice('sha256:'.length);
  const c = swift.client();
  try {
    await c.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${prefix}blobs/sha256/${hex.slice(0, 2)}/${hex}` }));
  } finally {
    c.destroy();
  }
}

describe('warm blob GET on S3', () => {
  it('is one GetObject and no HeadObject, whole or ranged', async () => {
    const img = makeImage({ layers: 1, layerSize: 64 << 10 });
    await warm(plain, 'team/one', img);
    const layer = img.layers[0]!;
    const url = `${plain.url}/v2/team/one/blobs/${layer.digest}`;
    const whole = await requestsDuring(plain, async () => {
      for (let i = 0; i < 5; i++) {
        const r = await request(url);
        assert.equal(r.status, 200, describeResponse(r));
        assert.equal(sha256(r.body), layer.digest);
        assert.equal(r.headers['content-length'], String(layer.bytes.length));
      }
    });
    assert.deepEqual(whole, { get: 5 });
    const ranged = await requestsDuring(plain, async () => {
      const r = await request(url, { headers: { range: 'bytes=10-19' } });
      assert.equal(r.status, 206, describeResponse(r));
      assert.equal(r.headers['content-range'], `bytes 10-19/${layer.bytes.length}`);
      assert.deepEqual(r.body, layer.bytes.subarray(10, 20));
    });
    assert.deepEqual(ranged, { get: 1 });
    // A range past the end is still refused as before (the link's size decides, without asking the bucket).
    const past = await request(url, { headers: { range: `bytes=${layer.bytes.length + 5}-${layer.bytes.length + 9}` } });
    assert.equal(past.status, 416, describeResponse(past));
  });

  it('an object removed behind wharf is fetched from the upstream again, whole and correct', async () => {
    const img = makeImage({ layers: 1, layerSize: 32 << 10 });
    await warm(plain, 'team/gone', img);
    const layer = img.layers[0]!;
    await removeBehindWharf('plain/', layer.digest);
    const r = await request(`${plain.url}/v2/team/gone/blobs/${layer.digest}`);
    assert.equal(r.status, 200, describeResponse(r));
    assert.equal(sha256(r.body), layer.digest);
    await waitIdle(plain);
    // Back in the bucket: the next GET is warm again.
    assert.deepEqual(await requestsDuring(plain, async () => void (await request(`${plain.url}/v2/team/gone/blobs/${layer.digest}`))), { get: 1 });
  });

  it('with redirect: true, wharf looks before redirecting, and serves an object removed behind it from the upstream', async () => {
    const img = makeImage({ layers: 1, layerSize: 32 << 10 });
    await warm(redirecting, 'team/redirect', img);
    const layer = img.layers[0]!;
    const url = `${redirecting.url}/v2/team/redirect/blobs/${layer.digest}`;
    let location = '';
    assert.deepEqual(
      await requestsDuring(redirecting, async () => {
        const r = await request(url);
        assert.equal(r.status, 307, describeResponse(r));
        location = r.headers.location!;
      }),
      { head: 1 },
    );
    assert.equal(sha256((await request(location)).body), layer.digest);
    await removeBehindWharf('redirect/', layer.digest);
    const r = await request(url);
    assert.equal(r.status, 200, `no redirect to a missing object: ${describeResponse(r)}`);
    assert.equal(sha256(r.body), layer.digest);
  });
});
