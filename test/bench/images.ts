import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { blobsOf, makeMultiPlatform, pushImage, sha256 } from '../helpers/oci-image.js';

export const MiB = 1024 * 1024;

const LAYER = 'application/vnd.oci.image.layer.v1.tar';
const CONFIG = 'application/vnd.oci.image.config.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export interface BenchBlob {
  digest: string;
  size: number;
  mediaType: string;
  /** The bytes: in memory (small blobs) or in a file (large ones, never held in memory). */
  bytes?: Buffer;
  path?: string;
}

/** An image as the bench pushes and pulls it: where it lives upstream and what a pull must receive. */
export interface BenchImage {
  /** Short label for tables. */
  label: string;
  repo: string;
  tag: string;
  /** Index (pull with --all). */
  index: boolean;
  /** Digest of the manifest (or index) the tag points to. */
  digest: string;
  blobs: BenchBlob[];
  /** Sum of blob sizes: what a full pull transfers, give or take the manifests. */
  blobBytes: number;
  push(registryUrl: string): Promise<void>;
}

/**
 * Incompressible bytes, fast: AES-256-CTR over zeros runs at GB/s (randomBytes is several times slower),
 * hashed and written as it is produced, so a 1 GiB layer never sits in memory.
 */
export async function randomFile(path: string, size: number): Promise<{ digest: string; size: number }> {
  const cipher = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
  const hash = createHash('sha256');
  const out = createWriteStream(path, { highWaterMark: 4 * MiB });
  const zeros = Buffer.alloc(4 * MiB);
  for (let left = size; left > 0; ) {
    const n = Math.min(left, zeros.length);
    const chunk = cipher.update(zeros.subarray(0, n));
    hash.update(chunk);
    left -= n;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

function randomBuffer(size: number): Buffer {
  return createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16)).update(Buffer.alloc(size));
}

function send(url: string, method: string, headers: Record<string, string>, body?: BenchBlob | Buffer): Promise<{ status: number; location?: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString('utf8').slice(0, 500)));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, text }));
      res.once('error', reject);
    });
    req.once('error', reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else if (body.bytes) req.end(body.bytes);
    else createReadStream(body.path!, { highWaterMark: 4 * MiB }).pipe(req);
  });
}

/** Monolithic upload (POST, then PUT with the digest), streaming from disk for large blobs. */
async function pushBlob(base: string, repo: string, b: BenchBlob): Promise<void> {
  const head = await send(`${base}/v2/${repo}/blobs/${b.digest}`, 'HEAD', {});
  if (head.status === 200) return;
  const post = await send(`${base}/v2/${repo}/blobs/uploads/`, 'POST', { 'content-length': '0' });
  if (post.status !== 202 || post.location === undefined) throw new Error(`POST upload ${repo}: HTTP ${post.status} ${post.text}`);
  const put = new URL(post.location, `${base}/`);
  put.searchParams.set('digest', b.digest);
  const res = await send(put.toString(), 'PUT', { 'content-type': 'application/octet-stream', 'content-length': String(b.size) }, b);
  if (res.status !== 201) throw new Error(`PUT blob ${b.digest}: HTTP ${res.status} ${res.text}`);
}

async function pushManifest(base: string, repo: string, ref: string, bytes: Buffer): Promise<void> {
  const res = await send(`${base}/v2/${repo}/manifests/${ref}`, 'PUT', { 'content-type': MANIFEST, 'content-length': String(bytes.length) }, bytes);
  if (res.status !== 201) throw new Error(`PUT manifest ${repo}:${ref}: HTTP ${res.status} ${res.text}`);
}

function image(label: string, repo: string, layers: BenchBlob[]): BenchImage {
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }));
  const config: BenchBlob = { digest: sha256(configBytes), size: configBytes.length, mediaType: CONFIG, bytes: configBytes };
  // Layers are plain (not gzip'd) random tar-sized blobs: registries and skopeo's dir: copy never look inside.
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST,
      config: { mediaType: CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const blobs = [config, ...layers];
  return {
    label,
    repo,
    tag: 'v1',
    index: false,
    digest: sha256(manifest),
    blobs,
    blobBytes: blobs.reduce((a, b) => a + b.size, 0),
    async push(base) {
      for (const b of blobs) await pushBlob(base, repo, b);
      await pushManifest(base, repo, 'v1', manifest);
    },
  };
}

/** One layer of `size` incompressible bytes, in a file under `dir`. */
export async function bigImage(label: string, repo: string, dir: string, size: number): Promise<BenchImage> {
  const path = join(dir, `${repo.replace(/\//g, '_')}.layer`);
  const { digest } = await randomFile(path, size);
  return image(label, repo, [{ digest, size, mediaType: LAYER, path }]);
}

/** `count` layers of 1–4 MiB (sizes spread evenly, so every run pulls the same total). */
export function layeredImage(label: string, repo: string, count: number): BenchImage {
  const layers: BenchBlob[] = [];
  for (let i = 0; i < count; i++) {
    const size = MiB + Math.round((3 * MiB * i) / Math.max(1, count - 1));
    const bytes = randomBuffer(size);
    layers.push({ digest: sha256(bytes), size, mediaType: LAYER, bytes });
  }
  return image(label, repo, layers);
}

/** A two-platform index (linux/amd64, linux/arm64) of small gzip'd images. */
export function indexImage(label: string, repo: string): BenchImage {
  const idx = makeMultiPlatform({ layers: 2, layerSize: 256 * 1024 });
  const blobs = blobsOf(idx).map((b) => ({ digest: b.digest, size: b.bytes.length, mediaType: b.mediaType, bytes: b.bytes }));
  return {
    label,
    repo,
    tag: 'v1',
    index: true,
    digest: idx.digest,
    blobs,
    blobBytes: blobs.reduce((a, b) => a + b.size, 0),
    push: (base) => pushImage(base, repo, 'v1', idx),
  };
}
