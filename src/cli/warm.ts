import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { parseImageRef } from '../core/admin-service.js';
import { parseManifest, isIndexType, manifestMediaTypes, referenceString, type Descriptor, type Digest } from '../oci/index.js';
import type { AdminClient } from './admin-client.js';
import { adminClient, CliError, human, plural, printJson, remoteOptions, type CommandIo, type RemoteOptions } from './common.js';

interface WarmOptions extends RemoteOptions {
  file?: string;
  platform?: string;
  concurrency?: string;
}

interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** One image pre-loaded: what it consists of and what had to come from upstream. */
export interface WarmResult {
  image: string;
  ok: boolean;
  error?: string;
  manifests: number;
  blobs: number;
  bytes: number;
  /** blobs that were on wharf's disk before warm asked for them (undefined when the admin API would not say) */
  alreadyCached?: number;
  alreadyCachedBytes?: number;
}

interface Progress {
  start(image: string, blobs: number, bytes: number, cached: number | undefined): void;
  advance(bytes: number): void;
  blobDone(d: Descriptor): void;
  finish(r: WarmResult): void;
  stop(): void;
}

const ACCEPT = manifestMediaTypes.join(', ');
const CACHED_BATCH = 50;

export function registerWarm(program: Command, io: CommandIo): void {
  remoteOptions(
    program
      .command('warm')
      .argument('[images...]', 'images to pre-load: name[:tag] or name@digest, as clients pull them from the mirror')
      .description('pull images through the running mirror so later pulls are served from its cache')
      .option('-f, --file <list>', 'read more images from a file, one per line (# comments)')
      .option('--platform <os/arch[/variant]>', 'for multi-platform images, only this platform (default: all)')
      .option('--concurrency <n>', 'blobs fetched at once per image', '4'),
  ).action(async (images: string[], opts: WarmOptions) => {
    const all = [...images, ...(opts.file !== undefined ? await readList(opts.file) : [])];
    if (all.length === 0) throw new CliError('warm: name at least one image (or --file)', 2);
    const platform = opts.platform !== undefined ? parsePlatform(opts.platform) : undefined;
    const concurrency = Number(opts.concurrency ?? '4');
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new CliError('--concurrency: must be a positive whole number', 2);
    const client = adminClient(io, opts);
    const progress = opts.json ? silentProgress() : io.stdout.isTTY ? barProgress(io) : lineProgress(io);
    const results: WarmResult[] = [];
    try {
      for (const image of all) results.push(await warmOne(client, image, platform, concurrency, progress));
    } finally {
      progress.stop();
    }
    if (opts.json) printJson(io, { images: results });
    else io.stdout.write(summary(results));
    io.exit(results.every((r) => r.ok) ? 0 : 1);
  });
}

async function warmOne(client: AdminClient, image: string, platform: Platform | undefined, concurrency: number, progress: Progress): Promise<WarmResult> {
  const result: WarmResult = { image, ok: false, manifests: 0, blobs: 0, bytes: 0 };
  try {
    const { name, reference } = parseImageRef(image);
    const top = await getManifest(client, name, referenceString(reference), reference.kind === 'digest' ? reference.digest : undefined);
    result.manifests += 1;
    const images: Array<{ bytes: Buffer; mediaType: string }> = [];
    if (isIndexType(top.mediaType)) {
      const children = top.parsed.manifests.filter((m) => platform === undefined || matches(m, platform));
      if (children.length === 0) throw new Error(`no manifest for ${platform ? formatPlatform(platform) : 'any platform'} in the index`);
      for (const child of children) {
        const m = await getManifest(client, name, child.digest, child.digest);
        result.manifests += 1;
        if (!isIndexType(m.mediaType)) images.push(m);
      }
    } else {
      images.push(top);
    }
    const blobs = new Map<Digest, Descriptor>();
    for (const img of images) for (const b of parseManifest(img.bytes, img.mediaType).blobs) blobs.set(b.digest, b);
    result.blobs = blobs.size;
    result.bytes = [...blobs.values()].reduce((n, b) => n + b.size, 0);
    const cached = await cachedOf(client, [...blobs.keys()]);
    if (cached) {
      result.alreadyCached = cached.size;
      result.alreadyCachedBytes = [...cached].reduce((n, d) => n + (blobs.get(d)?.size ?? 0), 0);
    }
    progress.start(image, result.blobs, result.bytes, result.alreadyCached);
    const queue = [...blobs.values()];
    const worker = async (): Promise<void> => {
      for (let b = queue.shift(); b !== undefined; b = queue.shift()) {
        await getBlob(client, name, b, (n) => progress.advance(n));
        progress.blobDone(b);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
    result.ok = true;
  } catch (e) {
    result.error = (e as Error).message;
  }
  progress.finish(result);
  return result;
}

async function getManifest(client: AdminClient, name: string, ref: string, expected: Digest | undefined) {
  const res = await client.fetch(`/v2/${name}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`manifest ${name}:${ref}: ${pullError(res.status, bytes)}`);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (expected !== undefined && expected !== digest) throw new Error(`manifest ${name}@${expected}: content hashes to ${digest}`);
  const parsed = parseManifest(bytes, res.headers.get('content-type') ?? undefined);
  return { bytes, mediaType: parsed.mediaType, parsed };
}

/** Reads the blob through the mirror, hashing it; the bytes themselves are not kept. */
async function getBlob(client: AdminClient, name: string, d: Descriptor, onBytes: (n: number) => void): Promise<void> {
  const res = await client.fetch(`/v2/${name}/blobs/${d.digest}`);
  if (res.status !== 200 || !res.body) {
    const body = Buffer.from(await res.arrayBuffer().catch(() => new ArrayBuffer(0)));
    throw new Error(`blob ${d.digest}: ${pullError(res.status, body)}`);
  }
  const alg = d.digest.slice(0, d.digest.indexOf(':'));
  const hash = createHash(alg);
  let size = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      size += chunk.byteLength;
      onBytes(chunk.byteLength);
    }
  } catch (e) {
    throw new Error(`blob ${d.digest}: transfer broke after ${size} bytes (${(e as Error).message})`);
  }
  const actual = `${alg}:${hash.digest('hex')}`;
  if (actual !== d.digest) throw new Error(`blob ${d.digest}: content hashes to ${actual}`);
  if (size !== d.size) throw new Error(`blob ${d.digest}: got ${size} bytes, manifest says ${d.size}`);
}

/** Which digests wharf already has on disk; undefined when its admin API would not say (credentials). */
async function cachedOf(client: AdminClient, digests: Digest[]): Promise<Set<Digest> | undefined> {
  const out = new Set<Digest>();
  try {
    for (let i = 0; i < digests.length; i += CACHED_BATCH) {
      const batch = digests.slice(i, i + CACHED_BATCH);
      const r = await client.get<{ cached: Digest[] }>(`/cached?digests=${batch.join(',')}`);
      for (const d of r.cached) out.add(d);
    }
  } catch {
    return undefined;
  }
  return out;
}

function pullError(status: number, body: Buffer): string {
  try {
    const e = (JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> }).errors?.[0];
    if (e) return `${e.code ?? 'ERROR'}: ${e.message ?? ''} (HTTP ${status})`;
  } catch {
    // not an error body
  }
  return `HTTP ${status}`;
}

export function parsePlatform(s: string): Platform {
  const [os, architecture, variant, ...rest] = s.split('/');
  if (!os || !architecture || rest.length > 0) throw new CliError(`--platform: expected os/arch[/variant], got ${s}`, 2);
  return variant ? { os, architecture, variant } : { os, architecture };
}

function matches(m: Descriptor, p: Platform): boolean {
  const mp = m.platform;
  if (!mp || mp.os !== p.os || mp.architecture !== p.architecture) return false;
  return p.variant === undefined || mp.variant === p.variant;
}

function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

async function readList(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(`--file: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 2);
  }
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '');
}

function summary(results: WarmResult[]): string {
  const ok = results.filter((r) => r.ok);
  const lines = results.filter((r) => !r.ok).map((r) => `failed ${r.image}: ${r.error ?? 'unknown error'}`);
  const blobs = ok.reduce((n, r) => n + r.blobs, 0);
  const bytes = ok.reduce((n, r) => n + r.bytes, 0);
  const known = ok.every((r) => r.alreadyCached !== undefined);
  const cached = ok.reduce((n, r) => n + (r.alreadyCached ?? 0), 0);
  const cachedBytes = ok.reduce((n, r) => n + (r.alreadyCachedBytes ?? 0), 0);
  const tail = known ? `; ${plural(cached, 'blob')} (${human(cachedBytes)}) were already cached, ${plural(blobs - cached, 'blob')} (${human(bytes - cachedBytes)}) fetched from upstream` : '';
  lines.push(`warmed ${ok.length} of ${plural(results.length, 'image')}: ${plural(blobs, 'blob')}, ${human(bytes)}${tail}`);
  return `${lines.join('\n')}\n`;
}

function lineProgress(io: CommandIo): Progress {
  return {
    start(image, blobs, bytes, cached) {
      io.stdout.write(`${image}: ${plural(blobs, 'blob')}, ${human(bytes)}${cached !== undefined ? ` (${cached} already cached)` : ''}\n`);
    },
    advance() {},
    blobDone(d) {
      io.stdout.write(`  ${d.digest} ${human(d.size)} ok\n`);
    },
    finish(r) {
      io.stdout.write(r.ok ? `${r.image}: done\n` : `${r.image}: FAILED: ${r.error ?? ''}\n`);
    },
    stop() {},
  };
}

function barProgress(io: CommandIo): Progress {
  const multi = new cliProgress.MultiBar(
    {
      format: '{image} |{bar}| {percentage}% {done}/{size} | layers {layers}/{layerTotal}',
      stream: io.stdout as NodeJS.WritableStream,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let bar: cliProgress.SingleBar | undefined;
  let done = 0;
  let layers = 0;
  let size = 0;
  let total = 0;
  const payload = (image?: string) => ({ ...(image !== undefined ? { image } : {}), done: human(done), size: human(size), layers, layerTotal: total });
  return {
    start(image, blobs, bytes) {
      done = 0;
      layers = 0;
      size = bytes;
      total = blobs;
      bar = multi.create(Math.max(bytes, 1), 0, payload(image));
    },
    advance(n) {
      done += n;
      bar?.update(done, payload());
    },
    blobDone() {
      layers += 1;
      bar?.update(done, payload());
    },
    finish(r) {
      if (r.ok) bar?.update(Math.max(size, 1), payload());
      else multi.log(`${r.image}: FAILED: ${r.error ?? ''}\n`);
      bar = undefined;
    },
    stop() {
      multi.stop();
    },
  };
}

function silentProgress(): Progress {
  return { start() {}, advance() {}, blobDone() {}, finish() {}, stop() {} };
}
