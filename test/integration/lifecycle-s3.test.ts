/**
 * Cache upkeep on object storage (a real S3: OpenStack Swift's s3api): cache.maxSize eviction deletes from
 * the bucket and the size accounting follows it; `wharf verify` finds a damaged object and moves it to
 * quarantine/, after which the next pull fetches it again.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { manifestAccept, request } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { startSwiftS3, type SwiftS3 } from '../helpers/swift-s3.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, waitIdle, type WharfProcess } from '../helpers/wharf.js';
import { S3BlobStore } from '../../src/store/blob/s3-blob-store.js';
import type { Digest } from '../../src/oci/index.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MiB = 1024 * 1024;
const MAX = 3 * MiB;
const LOW = 0.85;
const BUCKET = 'wharf-lifecycle';
const PREFIX = 'c/';

let swift: SwiftS3;
let registry: RegistryProcess;
let w: WharfProcess;
let view: S3BlobStore;
let local: TempDir;

before(async () => {
  [swift, registry] = await Promise.all([startSwiftS3(), startRegistry()]);
  await swift.createBucket(BUCKET);
  const s3 = { endpoint: swift.endpoint, region: 'us-east-1', bucket: BUCKET, prefix: PREFIX, forcePathStyle: true, accessKeyId: swift.accessKeyId, secretAccessKey: swift.secretAccessKey };
  w = await startWharf({
    config: {
      upstreams: [{ name: 'up', url: registry.url, default: true, tagFreshness: '0s' }],
      storage: { s3: { ...s3, partSize: '5MiB' } },
      cache: { maxSize: '3MiB', highWatermark: 0.95, lowWatermark: LOW, evictionInterval: '200ms' },
    },
  });
  local = await tempDir('wharf-s3-view-');
  view = await S3BlobStore.open({ s3: { ...s3, partSize: 5 * MiB, redirect: false, redirectExpiry: 60_000 }, localDir: local.path });
});
after(async () => {
  await w?.stop();
  await registry?.stop();
  await swift?.stop();
  await local?.cleanup();
});

function wharfCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: REPO_ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function pull(name: string, img: TestImage): Promise<void> {
  const m = await request(`${w.url}/v2/${name}/manifests/v1`, { headers: { accept: manifestAccept } });
  assert.equal(m.status, 200, describeResponse(m));
  for (const b of [img.config, ...img.layers]) {
    const res = await request(`${w.url}/v2/${name}/blobs/${b.digest}`);
    assert.equal(res.status, 200, `${b.digest}: ${describeResponse(res)}`);
    assert.equal(sha256(res.body), b.digest);
  }
  await waitIdle(w);
}

async function bucketBytes(): Promise<number> {
  let n = 0;
  for await (const b of view.list()) n += b.size;
  return n;
}

async function mirroredBytes(): Promise<number> {
  const res = await request(`${w.url}/_wharf/admin/stats`);
  assert.equal(res.status, 200, describeResponse(res));
  return (JSON.parse(res.body.toString('utf8')) as { cache: { mirroredBytes: number } }).cache.mirroredBytes;
}

it('eviction keeps the bucket under cache.maxSize, and an evicted image is fetched again', async () => {
  const imgs = [0, 1, 2].map(() => makeImage({ layers: 1, layerSize: 1.2 * MiB }));
  for (const [i, img] of imgs.entries()) await pushImage(registry.url, `team/e${i}`, 'v1', img);
  for (const [i, img] of imgs.entries()) await pull(`team/e${i}`, img);
  const deadline = Date.now() + 20_000;
  let mirrored = await mirroredBytes();
  while (mirrored > MAX * LOW) {
    if (Date.now() > deadline) assert.fail(`mirrored content stays at ${mirrored} bytes\n${w.logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
    mirrored = await mirroredBytes();
  }
  // Eviction unlinks a blob, then deletes its object: the figure above can drop a moment before the bucket does.
  let inBucket = await bucketBytes();
  for (let i = 0; i < 100 && inBucket > MAX * LOW; i++) {
    await new Promise((r) => setTimeout(r, 100));
    inBucket = await bucketBytes();
  }
  assert.ok(inBucket <= MAX * LOW, `the bucket holds no more than the low mark: ${inBucket} bytes, mirrored ${mirrored}`);
  // The least recently used went first; pulling it again fetches it again.
  assert.equal(await view.stat(imgs[0]!.layers[0]!.digest as Digest), undefined);
  await pull('team/e0', imgs[0]!);
  assert.ok(await view.stat(imgs[0]!.layers[0]!.digest as Digest));
});

it('wharf verify moves a damaged object to quarantine/ and the next pull repairs it', async () => {
  const img = makeImage({ layers: 1, layerSize: 100_000 });
  await pushImage(registry.url, 'team/v', 'v1', img);
  await pull('team/v', img);
  const layer = img.layers[0]!;
  const damaged = Buffer.from(layer.bytes);
  damaged[10] = damaged[10]! ^ 0xff;
  await view.bucket.put(view.blobKey(layer.digest as Digest), damaged);
  const r = await wharfCli(['verify', '--url', w.url]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`CORRUPT ${layer.digest}.*moved to quarantine/`));
  assert.equal(await view.stat(layer.digest as Digest), undefined);
  assert.ok(await view.bucket.head(`${PREFIX}quarantine/sha256-${layer.digest.slice(7)}`));
  await pull('team/v', img);
  assert.equal((await view.stat(layer.digest as Digest))?.size, layer.bytes.length);
});
