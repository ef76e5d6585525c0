/**
 * One wharf on object storage without Redis (a real S3: OpenStack Swift's s3api): a pull and a push work with
 * the embedded metadata store, a second wharf on the same bucket is refused (several replicas need Redis), a
 * restart of the same replica is not, and refused credentials are named at start-up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { startSwiftS3, type SwiftS3 } from '../helpers/swift-s3.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

const BUCKET = 'wharf-single';

let swift: SwiftS3;
let registry: RegistryProcess;
let dirs: TempDir;
let w: WharfProcess;
let config: (extra?: Record<string, unknown>) => Record<string, unknown>;

before(async () => {
  [swift, registry] = await Promise.all([startSwiftS3(), startRegistry()]);
  await swift.createBucket(BUCKET);
  dirs = await tempDir('wharf-s3-single-');
  config = (extra = {}) => ({
    upstreams: [{ name: 'up', url: registry.url, default: true, aliases: ['up.test'] }],
    storage: { s3: { endpoint: swift.endpoint, bucket: BUCKET, prefix: 'one/', forcePathStyle: true, accessKeyId: swift.accessKeyId, partSize: '5MiB', ...extra } },
  });
  // The secret through the environment, as an operator would pass it.
  w = await startWharf({ config: config(), dataDir: `${dirs.path}/a`, env: { WHARF_STORAGE_S3_SECRET_ACCESS_KEY: swift.secretAccessKey } });
});

after(async () => {
  await w?.stop();
  await registry?.stop();
  await swift?.stop();
  await dirs?.cleanup();
});

describe('one wharf on S3 without Redis', () => {
  it('pulls through and serves a push, restarts on the same data dir, and refuses a second wharf on the bucket', async () => {
    const img = makeImage({ layers: 1, layerSize: 7 << 20 });
    await pushImage(registry.url, 'team/app', 'v1', img);
    const layer = img.layers[0]!;
    const m = await request(`${w.url}/v2/team/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(m.status, 200, describeResponse(m));
    const got = await request(`${w.url}/v2/team/app/blobs/${layer.digest}`);
    assert.equal(sha256(got.body), layer.digest);
    // A local push through the registry API (monolithic PUT) lands in the bucket too.
    const pushed = Buffer.from('pushed through wharf');
    const post = await request(`${w.url}/v2/local/app/blobs/uploads/?digest=${sha256(pushed)}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: pushed });
    assert.equal(post.status, 201, describeResponse(post));
    assert.deepEqual((await request(`${w.url}/v2/local/app/blobs/${sha256(pushed)}`)).body, pushed);

    const second = startWharf({ config: config(), dataDir: `${dirs.path}/b`, env: { WHARF_STORAGE_S3_SECRET_ACCESS_KEY: swift.secretAccessKey }, startTimeoutMs: 60_000 });
    await assert.rejects(second, /several replicas on one bucket need a shared redis/);

    // The same replica killed and started again (same data dir) is the same owner.
    await w.kill();
    await w.restart();
    assert.equal(sha256((await request(`${w.url}/v2/team/app/blobs/${layer.digest}`)).body), layer.digest);
  });

  it('a refused credential stops start-up with a line naming storage.s3, and the secret is not in it', async () => {
    const wrong = 'not-the-secret-value';
    const bad = startWharf({ config: config({ prefix: 'other/' }), dataDir: `${dirs.path}/c`, env: { WHARF_STORAGE_S3_SECRET_ACCESS_KEY: wrong }, startTimeoutMs: 60_000 });
    await assert.rejects(bad, (e: Error) => {
      assert.match(e.message, /object storage denied access: check storage\.s3 credentials/);
      assert.ok(!e.message.includes(wrong), 'secret not logged');
      return true;
    });
  });
});
