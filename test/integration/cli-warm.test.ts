/**
 * `wharf warm` pulls images through a running mirror so that the next pull costs no upstream request,
 * honours --platform for multi-platform images, reports what was already cached, and fails loudly.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request } from '../helpers/http.js';
import { blobsOf, makeImage, makeMultiPlatform, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';
import { describeResponse, onDisk, startWharf, waitOnDisk, type WharfProcess } from '../helpers/wharf.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function wharfCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: REPO_ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let registry: RegistryProcess;
let proxy: FaultProxy;
let w: WharfProcess;

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  w = await startWharf({ config: { upstreams: [{ name: 'hub', url: proxy.url, default: true, tagFreshness: '10m' }] } });
});
after(async () => {
  await w?.stop();
  await proxy?.stop();
  await registry?.stop();
});

/** What a client does for one platform image: manifest by tag (or digest), then every blob, verified. */
async function pullImage(repo: string, ref: string, img: TestImage): Promise<void> {
  const m = await request(`${w.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: manifestAccept } });
  assert.equal(m.status, 200, describeResponse(m));
  for (const b of [img.config, ...img.layers]) {
    const res = await request(`${w.url}/v2/${repo}/blobs/${b.digest}`);
    assert.equal(res.status, 200, describeResponse(res));
    assert.equal(sha256(res.body), b.digest);
  }
}

describe('wharf warm', () => {
  it('pre-loads a multi-platform image: the following pull makes zero upstream requests', async () => {
    const index = makeMultiPlatform({ layers: 2, layerSize: 64 * 1024 });
    await pushImage(registry.url, 'acme/multi', '1', index);

    const warm = await wharfCli(['warm', 'acme/multi:1', '--url', w.url]);
    assert.equal(warm.code, 0, `${warm.stdout}\n${warm.stderr}`);
    const blobs = blobsOf(index);
    // warm's own manifest requests start layer prefetch, which may finish some blobs before warm looks: those count as cached.
    const line = new RegExp(`^acme/multi:1: ${blobs.length} blobs, .* \\((\\d+) already cached\\)$`, 'm').exec(warm.stdout);
    assert.ok(line, `plain lines when stdout is not a TTY:\n${warm.stdout}`);
    const before = Number(line[1]);
    const total = new RegExp(`^warmed 1 of 1 image: ${blobs.length} blobs, .*; (\\d+) blobs? \\(.*\\) were already cached, (\\d+) blobs? .* fetched from upstream$`, 'm').exec(warm.stdout);
    assert.ok(total, warm.stdout);
    assert.equal(Number(total[1]), before);
    assert.equal(Number(total[1]) + Number(total[2]), blobs.length);
    await waitOnDisk(w.dataDir, blobs.map((b) => b.digest));

    proxy.reset();
    const top = await request(`${w.url}/v2/acme/multi/manifests/1`, { headers: { accept: manifestAccept } });
    assert.deepEqual(top.body, index.bytes);
    for (const img of index.images) await pullImage('acme/multi', img.manifestDigest, img);
    assert.equal(proxy.count(), 0, `no upstream request after warm: ${proxy.requests.map((r) => `${r.method} ${r.path}`).join(', ')}`);

    const again = await wharfCli(['warm', 'acme/multi:1', '--url', w.url]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`; ${blobs.length} blobs \\(.*\\) were already cached, 0 blobs \\(0 B\\) fetched from upstream$`, 'm'));
  });

  it('--platform fetches only that platform; --file adds images', async (t) => {
    const index = makeMultiPlatform({ layers: 1, layerSize: 32 * 1024 });
    const plain = makeImage({ layers: 1 });
    await pushImage(registry.url, 'acme/plat', '1', index);
    await pushImage(registry.url, 'acme/plain', 'v2', plain);
    const dir = await tempDir();
    t.after(() => dir.cleanup());
    const list = join(dir.path, 'images.txt');
    await writeFile(list, '# images for the test\nacme/plain:v2\n\n');

    const warm = await wharfCli(['warm', 'acme/plat:1', '--file', list, '--platform', 'linux/arm64/v8', '--url', w.url]);
    assert.equal(warm.code, 0, `${warm.stdout}\n${warm.stderr}`);
    const [amd64, arm64] = index.images as [TestImage, TestImage];
    await waitOnDisk(w.dataDir, [arm64.config, ...arm64.layers, ...blobsOf(plain)].map((b) => b.digest));
    for (const b of [amd64.config, ...amd64.layers]) assert.equal(await onDisk(w.dataDir, b.digest), false, `amd64 ${b.digest} not fetched`);
    assert.match(warm.stdout, /^warmed 2 of 2 images/m);
  });

  it('exits non-zero and names the image that could not be pulled', async () => {
    const warm = await wharfCli(['warm', 'acme/missing:1', '--url', w.url]);
    assert.equal(warm.code, 1, warm.stdout);
    assert.match(warm.stdout, /^failed acme\/missing:1: manifest acme\/missing:1: MANIFEST_UNKNOWN/m);
    assert.match(warm.stdout, /^warmed 0 of 1 image/m);
  });
});
