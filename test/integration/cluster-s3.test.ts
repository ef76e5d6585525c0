/**
 * Replicas on object storage: two wharf processes sharing one Redis and one bucket on a real S3
 * implementation (OpenStack Swift's s3api), each with its own data dir (no shared volume), in front of a real
 * Distribution registry behind a counting fault proxy and a throttle (blob bodies arrive slowly).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request, type HttpResponse } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { copy } from '../helpers/skopeo.js';
import { startSwiftS3, type SwiftS3 } from '../helpers/swift-s3.js';
import { tempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { S3BlobStore } from '../../src/store/blob/s3-blob-store.js';
import { deleteKeys, REDIS_URL, sleep, startThrottle, testPrefix, type Throttle } from './cluster-helpers.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUCKET = 'wharf-cluster';
const PREFIX = 'mirror/';
const MiB = 1 << 20;

let swift: SwiftS3;
let registry: RegistryProcess;
let proxy: FaultProxy;
let throttle: Throttle;
let config: Record<string, unknown>;
let a: WharfProcess;
let b: WharfProcess;
/** The test's own view of the bucket (what a client could ever see there). */
let bucket: S3BlobStore;
let local: Awaited<ReturnType<typeof tempDir>>;
const keyPrefix = testPrefix();

function s3Config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    endpoint: swift.endpoint,
    region: 'us-east-1',
    bucket: BUCKET,
    prefix: PREFIX,
    forcePathStyle: true,
    accessKeyId: swift.accessKeyId,
    secretAccessKey: swift.secretAccessKey,
    partSize: '5MiB',
    ...extra,
  };
}

before(async () => {
  [swift, registry] = await Promise.all([startSwiftS3(), startRegistry()]);
  await swift.createBucket(BUCKET);
  proxy = await startFaultProxy(registry.url);
  // ~64 KiB socket chunks every 15 ms: an 8 MiB layer takes about two seconds to arrive.
  throttle = await startThrottle(proxy.url, 15);
  config = {
    upstreams: [{ name: 'up', url: throttle.url, default: true, aliases: ['up.test'], tagFreshness: '1m' }],
    redis: { url: REDIS_URL, keyPrefix },
    storage: { s3: s3Config() },
    log: { level: 'info' },
  };
  [a, b] = await Promise.all([startWharf({ config }), startWharf({ config })]);
  local = await tempDir('wharf-s3-view-');
  bucket = await S3BlobStore.open({
    s3: {
      endpoint: swift.endpoint,
      region: 'us-east-1',
      bucket: BUCKET,
      prefix: PREFIX,
      forcePathStyle: true,
      accessKeyId: swift.accessKeyId,
      secretAccessKey: swift.secretAccessKey,
      partSize: 5 * MiB,
      redirect: false,
      redirectExpiry: 60_000,
    },
    localDir: local.path,
  });
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await throttle?.stop();
  await proxy?.stop();
  await registry?.stop();
  await swift?.stop();
  await local?.cleanup();
  await deleteKeys(REDIS_URL, keyPrefix);
});

const getBlob = (w: WharfProcess, repo: string, digest: string): Promise<HttpResponse> => request(`${w.url}/v2/${repo}/blobs/${digest}`, { timeoutMs: 60_000 });
const getManifest = (w: WharfProcess, repo: string, ref: string, method = 'GET'): Promise<HttpResponse> =>
  request(`${w.url}/v2/${repo}/manifests/${ref}`, { method, headers: { accept: manifestAccept } });
const blobGets = (repo: string, digest: string): number => proxy.count({ method: 'GET', path: `/v2/${repo}/blobs/${digest}` });

async function pull(w: WharfProcess, repo: string, tag: string, img: TestImage): Promise<void> {
  const m = await getManifest(w, repo, tag);
  assert.equal(m.status, 200, `manifest on ${w.url}: ${describeResponse(m)}`);
  await Promise.all(
    [img.config, ...img.layers].map(async (blob) => {
      const res = await getBlob(w, repo, blob.digest);
      assert.equal(res.status, 200, `blob ${blob.digest} on ${w.url}: ${describeResponse(res)}`);
      assert.equal(sha256(res.body), blob.digest, `bytes of ${blob.digest} from ${w.url}`);
    }),
  );
}

async function multipartUploads(): Promise<string[]> {
  const keys: string[] = [];
  for await (const u of bucket.bucket.listMultipart(PREFIX)) keys.push(u.key);
  return keys;
}

/** Files under a replica's data dir other than its own metadata: blobs never land there with storage.s3. */
async function blobFilesIn(w: WharfProcess): Promise<string[]> {
  const names = await readdir(w.dataDir, { recursive: true }).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith('blobs/') && /[a-f0-9]{64}$/.test(n));
}

function wharfCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: REPO_ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('wharf replicas on S3 (Swift s3api) sharing Redis, no shared volume', () => {
  it('8 concurrent cold pulls across both replicas fetch each blob once; the blobs are in the bucket, not on disk', async () => {
    const repo = 'team/cold';
    const img = makeImage({ layers: 2, layerSize: 6 * MiB });
    await pushImage(registry.url, repo, 'v1', img);
    proxy.reset();
    proxy.inject({ match: { method: 'GET', path: /\/blobs\// }, times: 3, action: { kind: 'delay', ms: 400 } });
    await Promise.all(Array.from({ length: 8 }, (_, i) => pull(i % 2 === 0 ? a : b, repo, 'v1', img)));
    proxy.clearFaults();
    for (const blob of [img.config, ...img.layers]) {
      assert.equal(blobGets(repo, blob.digest), 1, `upstream GETs of ${blob.digest}`);
      assert.equal((await bucket.stat(blob.digest as never))?.size, blob.bytes.length, `${blob.digest} in the bucket`);
    }
    assert.deepEqual(await multipartUploads(), [], 'every multipart upload completed');
    assert.deepEqual([...(await blobFilesIn(a)), ...(await blobFilesIn(b))], []);
    // Warm on both, with ranges, without asking upstream again.
    const before = proxy.count({ method: 'GET', path: /\/blobs\// });
    await Promise.all([pull(a, repo, 'v1', img), pull(b, repo, 'v1', img)]);
    const layer = img.layers[0]!;
    const part = await request(`${b.url}/v2/${repo}/blobs/${layer.digest}`, { headers: { range: 'bytes=5242879-5242980' } });
    assert.equal(part.status, 206, describeResponse(part));
    assert.deepEqual(part.body, layer.bytes.subarray(5242879, 5242981));
    assert.equal(proxy.count({ method: 'GET', path: /\/blobs\// }), before);
  });

  it('a chunked upload across replicas (POST A, PATCH B, PATCH A, PUT B) assembles, verifies and serves', async () => {
    const repo = 'team/upload';
    const bytes = Buffer.concat([Buffer.alloc(3 * MiB, 1), Buffer.alloc(4 * MiB, 2), Buffer.alloc(100_000, 3)]);
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
    await patch(b, 0, 3 * MiB);
    await patch(a, 3 * MiB, 7 * MiB);
    const put = await request(`${b.url}${path}?digest=${digest}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes.subarray(7 * MiB) });
    assert.equal(put.status, 201, describeResponse(put));
    for (const w of [a, b]) {
      const res = await getBlob(w, repo, digest);
      assert.equal(res.status, 200, describeResponse(res));
      assert.equal(sha256(res.body), digest);
    }
    // A wrong digest at the end publishes nothing.
    const post2 = await request(`${a.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    const path2 = new URL(post2.headers.location ?? '', a.url).pathname;
    const wrong = sha256('something else');
    const put2 = await request(`${b.url}${path2}?digest=${wrong}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
    assert.equal(put2.status, 400, describeResponse(put2));
    assert.equal(await bucket.stat(wrong as never), undefined);
    assert.equal(await bucket.stat(digest as never).then((s) => s?.size), bytes.length);
  });

  it('a replica killed mid-download leaves nothing under the digest, and gc aborts its multipart upload', async () => {
    const repo = 'team/crash';
    const img = makeImage({ layers: 1, layerSize: 12 * MiB });
    await pushImage(registry.url, repo, 'v1', img);
    const layer = img.layers[0]!;
    const c = await startWharf({ config });
    try {
      assert.equal((await getManifest(c, repo, 'v1')).status, 200);
      const download = getBlob(c, repo, layer.digest).catch(() => undefined);
      let inProgress: string[] = [];
      for (let i = 0; i < 300 && inProgress.length === 0; i++) {
        inProgress = await multipartUploads();
        if (inProgress.length === 0) await sleep(50);
      }
      assert.equal(inProgress.length, 1, 'the download streams into a multipart upload');
      await c.kill();
      await download;
    } finally {
      await c.stop();
    }
    assert.equal(await bucket.stat(layer.digest as never), undefined, 'nothing visible under the digest');
    let left = await multipartUploads();
    for (let i = 0; i < 10 && left.length > 0; i++) {
      await sleep(1000);
      const gc = await wharfCli(['gc', '--grace', '1s', '--url', a.url]);
      assert.equal(gc.code, 0, gc.stderr);
      left = await multipartUploads();
    }
    assert.deepEqual(left, [], 'gc aborted the dead upload');
  });

  it('redirect: true answers warm blob GETs with 307 to a presigned URL that clients follow; HEAD and manifests stay on wharf', async () => {
    const repo = 'team/redirect';
    const img = makeImage({ layers: 1, layerSize: 1 * MiB });
    await pushImage(registry.url, repo, 'v1', img);
    await pull(a, repo, 'v1', img);
    const r = await startWharf({ config: { ...config, storage: { s3: s3Config({ redirect: true, redirectExpiry: '5m' }) } } });
    const dir = await tempDir('wharf-s3-skopeo-');
    try {
      const layer = img.layers[0]!;
      const res = await getBlob(r, repo, layer.digest);
      assert.equal(res.status, 307, describeResponse(res));
      const location = res.headers.location ?? '';
      assert.ok(location.startsWith(`${swift.endpoint}/${BUCKET}/${PREFIX}blobs/sha256/`), location);
      const followed = await request(location);
      assert.equal(followed.status, 200);
      assert.equal(sha256(followed.body), layer.digest);
      const head = await request(`${r.url}/v2/${repo}/blobs/${layer.digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(layer.bytes.length));
      assert.equal((await getManifest(r, repo, 'v1')).status, 200);
      // A real client follows it end to end.
      await copy(`docker://${r.host}/${repo}:v1`, `dir:${dir.path}/img`);
      const files = await readdir(`${dir.path}/img`);
      assert.ok(files.includes(layer.digest.slice(7)), files.join(' '));
    } finally {
      await r.stop();
      await dir.cleanup();
    }
  });
});
