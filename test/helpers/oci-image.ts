import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { RegistrySession, trimSlash, type Credentials } from './http.js';

export { fetchBlob, fetchManifest, type Credentials } from './http.js';

export type ImageFormat = 'oci' | 'docker';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface TestBlob {
  digest: string;
  bytes: Buffer;
  mediaType: string;
}

export interface TestImage {
  manifest: Buffer;
  manifestDigest: string;
  mediaType: string;
  config: { digest: string; bytes: Buffer; mediaType: string };
  layers: TestBlob[];
  platform: Platform;
  /** sha256 of each uncompressed layer tar, as in the config's rootfs.diff_ids. */
  diffIds: string[];
}

export interface TestIndex {
  bytes: Buffer;
  digest: string;
  mediaType: string;
  images: TestImage[];
}

const TYPES = {
  oci: {
    manifest: 'application/vnd.oci.image.manifest.v1+json',
    index: 'application/vnd.oci.image.index.v1+json',
    config: 'application/vnd.oci.image.config.v1+json',
    layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  },
  docker: {
    manifest: 'application/vnd.docker.distribution.manifest.v2+json',
    index: 'application/vnd.docker.distribution.manifest.list.v2+json',
    config: 'application/vnd.docker.container.image.v1+json',
    layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  },
} as const;

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function octal(n: number, width: number): string {
  // width includes the trailing NUL
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar archive holding one regular file; written by hand so the tests depend on nothing. */
export function tarOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512, 0);
  header.write(name, 0, 100, 'utf8');
  header.write(octal(0o644, 8), 100, 'ascii');
  header.write(octal(0, 8), 108, 'ascii');
  header.write(octal(0, 8), 116, 'ascii');
  header.write(octal(content.length, 12), 124, 'ascii');
  header.write(octal(0, 12), 136, 'ascii');
  header.write('        ', 148, 'ascii'); // checksum is computed with its own field as spaces
  header.write('0', 156, 'ascii');
  header.write('ustar\0', 257, 'ascii');
  header.write('00', 263, 'ascii');
  header.write('root', 265, 'ascii');
  header.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  const pad = (512 - (content.length % 512)) % 512;
  return Buffer.concat([header, content, Buffer.alloc(pad), Buffer.alloc(1024)]);
}

export interface MakeImageOptions {
  layers?: number;
  /** Bytes of random file content per layer (default 2048). Random data barely compresses. */
  layerSize?: number;
  format?: ImageFormat;
  platform?: Platform;
  /** Merged into the config's `config` object (Labels, Entrypoint, Cmd, …). */
  runConfig?: Record<string, unknown>;
}

/** A small but real image: gzip'd tar layers, a config whose diff_ids match, and a manifest. */
export function makeImage(opts: MakeImageOptions = {}): TestImage {
  const format = opts.format ?? 'oci';
  const t = TYPES[format];
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers: TestBlob[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < (opts.layers ?? 2); i++) {
    const tar = tarOneFile(`file-${i}-${randomBytes(4).toString('hex')}`, randomBytes(opts.layerSize ?? 2048));
    diffIds.push(sha256(tar));
    const bytes = gzipSync(tar);
    layers.push({ digest: sha256(bytes), bytes, mediaType: t.layer });
  }
  const configJson: Record<string, unknown> = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
    created: new Date().toISOString(),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], ...opts.runConfig },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map(() => ({ created_by: 'wharf test layer' })),
  };
  const configBytes = Buffer.from(JSON.stringify(configJson));
  const config = { digest: sha256(configBytes), bytes: configBytes, mediaType: t.config };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: t.manifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: configBytes.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.bytes.length })),
    }),
  );
  return { manifest, manifestDigest: sha256(manifest), mediaType: t.manifest, config, layers, platform, diffIds };
}

/** An image index (OCI) or manifest list (docker) over the given images, one entry per platform. */
export function makeIndex(images: TestImage[], format: ImageFormat = 'oci'): TestIndex {
  const mediaType = TYPES[format].index;
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map((img) => ({
        mediaType: img.mediaType,
        digest: img.manifestDigest,
        size: img.manifest.length,
        platform: img.platform,
      })),
    }),
  );
  return { bytes, digest: sha256(bytes), mediaType, images };
}

/** Convenience: one image per platform (default linux/amd64 + linux/arm64/v8) and their index. */
export function makeMultiPlatform(
  opts: Omit<MakeImageOptions, 'platform'> & { platforms?: Platform[] } = {},
): TestIndex {
  const platforms = opts.platforms ?? [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm64', variant: 'v8' },
  ];
  return makeIndex(
    platforms.map((platform) => makeImage({ ...opts, platform })),
    opts.format ?? 'oci',
  );
}

export function isIndex(x: TestImage | TestIndex): x is TestIndex {
  return 'images' in x;
}

/** Every blob (configs and layers) referenced by an image or index, without duplicates. */
export function blobsOf(x: TestImage | TestIndex): TestBlob[] {
  const imgs = isIndex(x) ? x.images : [x];
  const seen = new Map<string, TestBlob>();
  for (const img of imgs) {
    for (const b of [img.config, ...img.layers]) seen.set(b.digest, b);
  }
  return [...seen.values()];
}

/** The manifest bytes and digest at the top of an image or index. */
export function topManifest(x: TestImage | TestIndex): { bytes: Buffer; digest: string; mediaType: string } {
  return isIndex(x)
    ? { bytes: x.bytes, digest: x.digest, mediaType: x.mediaType }
    : { bytes: x.manifest, digest: x.manifestDigest, mediaType: x.mediaType };
}

/**
 * Writes (or adds to) an OCI image layout at `dir` and returns the skopeo reference `oci:<dir>:<tag>`.
 */
export async function writeOciLayout(dir: string, tag: string, x: TestImage | TestIndex): Promise<string> {
  const blobDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  const put = (digest: string, bytes: Buffer): Promise<void> =>
    writeFile(join(blobDir, digest.slice('sha256:'.length)), bytes);
  for (const b of blobsOf(x)) await put(b.digest, b.bytes);
  for (const img of isIndex(x) ? x.images : [x]) await put(img.manifestDigest, img.manifest);
  const top = topManifest(x);
  await put(top.digest, top.bytes);

  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const indexPath = join(dir, 'index.json');
  type Entry = { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
  let index: { schemaVersion: number; manifests: Entry[] } = { schemaVersion: 2, manifests: [] };
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8')) as typeof index;
  } catch {
    // no layout yet
  }
  const refName = 'org.opencontainers.image.ref.name';
  index.manifests = index.manifests.filter((m) => m.annotations?.[refName] !== tag);
  index.manifests.push({
    mediaType: top.mediaType,
    digest: top.digest,
    size: top.bytes.length,
    annotations: { [refName]: tag },
  });
  await writeFile(indexPath, JSON.stringify(index));
  return `oci:${dir}:${tag}`;
}

/** Reads back the manifest an OCI layout's index.json names for `tag` (e.g. after a skopeo copy). */
export async function readOciLayout(dir: string, tag: string): Promise<{ digest: string; mediaType: string; bytes: Buffer }> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ mediaType: string; digest: string; annotations?: Record<string, string> }>;
  };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (entry === undefined) throw new Error(`readOciLayout: no tag ${tag} in ${dir}`);
  const bytes = await readFile(join(dir, 'blobs', 'sha256', entry.digest.slice('sha256:'.length)));
  return { digest: entry.digest, mediaType: entry.mediaType, bytes };
}

function expectStatus(what: string, res: { status: number; body: Buffer }, ...ok: number[]): void {
  if (!ok.includes(res.status)) {
    throw new Error(`${what}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 500)}`);
  }
}

/**
 * Seeds a registry over its HTTP API: each blob by POST + monolithic PUT (skipped when HEAD finds it),
 * then manifests; for an index the children first, by digest, then the index under `tag`.
 * Auth challenges are answered (Bearer via the realm, or Basic); `auth` omitted means anonymous.
 */
export async function pushImage(
  baseUrl: string,
  repo: string,
  tag: string,
  x: TestImage | TestIndex,
  auth?: Credentials,
): Promise<void> {
  const base = trimSlash(baseUrl);
  const s = new RegistrySession(auth, `repository:${repo}:pull,push`);
  for (const b of blobsOf(x)) {
    const head = await s.request(`${base}/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' });
    if (head.status === 200) continue;
    const post = await s.request(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(0) });
    expectStatus(`POST upload ${repo}`, post, 202);
    const location = post.headers.location;
    if (location === undefined) throw new Error(`POST upload ${repo}: no Location`);
    const put = new URL(location, `${base}/`);
    put.searchParams.set('digest', b.digest);
    const res = await s.request(put.toString(), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: b.bytes,
    });
    expectStatus(`PUT blob ${b.digest}`, res, 201);
  }
  const putManifest = async (ref: string, mediaType: string, bytes: Buffer): Promise<void> => {
    const res = await s.request(`${base}/v2/${repo}/manifests/${ref}`, {
      method: 'PUT',
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    expectStatus(`PUT manifest ${repo}:${ref}`, res, 201);
  };
  if (isIndex(x)) {
    for (const img of x.images) await putManifest(img.manifestDigest, img.mediaType, img.manifest);
    await putManifest(tag, x.mediaType, x.bytes);
  } else {
    await putManifest(tag, x.mediaType, x.manifest);
  }
}
