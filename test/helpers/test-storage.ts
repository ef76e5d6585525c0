/**
 * The storage backend matrix: `WHARF_TEST_STORAGE=s3` runs a test file with every wharf it starts keeping its
 * blobs in a real S3 implementation (one Swift s3api per test process, test/helpers/swift-s3.ts) instead of
 * under its dataDir. startWharf (test/helpers/wharf.ts) adds `storage.s3` to a config that names no storage;
 * the key prefix is derived from the dataDir, so a restart or a second replica on the same dataDir shares the
 * same blobs exactly as it would on the filesystem, and two wharfs on different dataDirs share nothing.
 *
 * Tests that look at blobs use blobStored()/storedBlobs() here instead of the files; a test that can only
 * work on files says so with `{ skip: onlyOnFilesystem('why') }` (listed in README, "Testing").
 */
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { access, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { after } from 'node:test';
import { stringify } from 'yaml';
import { startSwiftS3, type SwiftS3 } from './swift-s3.js';

export type TestStorage = 'fs' | 's3';

/** The backend this test process runs on (WHARF_TEST_STORAGE; default the filesystem). */
export function testStorage(): TestStorage {
  const v = process.env.WHARF_TEST_STORAGE ?? 'fs';
  if (v !== 'fs' && v !== 's3') throw new Error(`WHARF_TEST_STORAGE must be fs or s3, not ${JSON.stringify(v)}`);
  return v;
}

export const onS3 = testStorage() === 's3';

/**
 * WHARF_TEST_S3_REDIRECT=1 (with WHARF_TEST_STORAGE=s3): `redirect: true`, so warm blob GETs answer 307 to a
 * presigned URL of the bucket, and the clients under test (skopeo) fetch the bytes from there.
 */
export const onS3Redirect = onS3 && process.env.WHARF_TEST_S3_REDIRECT === '1';

/** `{ skip: onlyOnFilesystem('reason') }`: the reason in S3 mode (the test is reported as skipped), false otherwise. */
export function onlyOnFilesystem(reason: string): string | false {
  return onS3 ? `filesystem only: ${reason}` : false;
}

/** The one bucket of this test process; every dataDir gets its own prefix in it. */
export const MATRIX_BUCKET = 'wharf-matrix';

let swift: Promise<SwiftS3> | undefined;

/** The process's Swift, started on first use (about 4 s) with the matrix bucket made. */
export function sharedSwift(): Promise<SwiftS3> {
  swift ??= (async () => {
    const s = await startSwiftS3({ unref: true });
    try {
      await s.createBucket(MATRIX_BUCKET);
    } catch (e) {
      await s.stop();
      throw e;
    }
    return s;
  })();
  // A failed start is not cached: the next test may try again.
  swift.catch(() => (swift = undefined));
  return swift;
}

/** Stops the shared Swift (if one was started) and removes its files. Safe twice. */
export async function stopTestStorage(): Promise<void> {
  const s = swift;
  swift = undefined;
  if (s) await (await s.catch(() => undefined))?.stop();
}

// The shared Swift's processes do not hold the test process open (they are unref'd), so node:test reaches the
// end of the file and runs this root hook; a process that dies instead SIGKILLs them (swift-s3.ts's exit hook).
if (onS3) after(stopTestStorage);

/** `<hash of dataDir>/`: a restart or a second replica on the same dataDir gets the same prefix. */
export function prefixFor(dataDir: string): string {
  return `d-${createHash('sha256').update(dataDir).digest('hex').slice(0, 20)}/`;
}

/** The `storage` section startWharf adds in S3 mode. */
export async function s3StorageFor(dataDir: string): Promise<{ s3: Record<string, unknown> }> {
  const s = await sharedSwift();
  return {
    s3: {
      endpoint: s.endpoint,
      region: s.region,
      bucket: MATRIX_BUCKET,
      prefix: prefixFor(dataDir),
      forcePathStyle: true,
      // S3's smallest part: downloads of a few MiB already go through multipart uploads.
      partSize: '5MiB',
      accessKeyId: s.accessKeyId,
      secretAccessKey: s.secretAccessKey,
      ...(onS3Redirect ? { redirect: true, redirectExpiry: '5m' } : {}),
    },
  };
}

/** `config` with `storage.s3` added in S3 mode, unless the test configures storage itself. */
export async function withTestStorage(config: object, dataDir: string): Promise<object> {
  if (!onS3 || 'storage' in config) return config;
  return { ...config, storage: await s3StorageFor(dataDir) };
}

async function withClient<T>(run: (c: S3Client) => Promise<T>): Promise<T> {
  const c = (await sharedSwift()).client();
  try {
    return await run(c);
  } finally {
    c.destroy();
  }
}

function blobPath(digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  return `blobs/${alg}/${hex.slice(0, 2)}/${hex}`;
}

/** Whether the wharf on `dataDir` holds the blob now: its file, or its object in the bucket in S3 mode. */
export async function blobStored(dataDir: string, digest: string): Promise<boolean> {
  if (!onS3) {
    return access(join(dataDir, blobPath(digest))).then(
      () => true,
      () => false,
    );
  }
  return withClient((c) =>
    c.send(new HeadObjectCommand({ Bucket: MATRIX_BUCKET, Key: prefixFor(dataDir) + blobPath(digest) })).then(
      () => true,
      (e: { $metadata?: { httpStatusCode?: number } }) => {
        if (e?.$metadata?.httpStatusCode === 404) return false;
        throw e;
      },
    ),
  );
}

/** Every object under `<prefix><sub>` in S3 mode (keys relative to it, sorted). */
export async function objectsUnder(dataDir: string, sub: string): Promise<string[]> {
  const root = prefixFor(dataDir) + sub;
  return withClient(async (c) => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const r = await c.send(new ListObjectsV2Command({ Bucket: MATRIX_BUCKET, Prefix: root, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of r.Contents ?? []) if (o.Key) keys.push(o.Key.slice(root.length));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  });
}

/** A stored blob's bytes (undefined when it is not stored): its file, or its object in S3 mode. */
export async function storedBytes(dataDir: string, digest: string): Promise<Buffer | undefined> {
  if (!onS3) return readFile(join(dataDir, blobPath(digest))).catch(() => undefined);
  return withClient(async (c) => {
    try {
      const r = await c.send(new GetObjectCommand({ Bucket: MATRIX_BUCKET, Key: prefixFor(dataDir) + blobPath(digest) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (e) {
      if ((e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode === 404) return undefined;
      throw e;
    }
  });
}

/** Every stored blob as `<alg>/<2 hex>/<hex>` (sorted): files under dataDir/blobs, or the objects in S3 mode. */
export async function storedBlobs(dataDir: string): Promise<string[]> {
  return onS3 ? objectsUnder(dataDir, 'blobs/') : filesUnder(join(dataDir, 'blobs'));
}

/**
 * What running upload sessions keep (sorted): files under dataDir/tmp, and in S3 mode also the session
 * objects (`s3:uploads/<id>/…`) that let any replica resume them.
 */
export async function stagedUploads(dataDir: string): Promise<string[]> {
  const local = await filesUnder(join(dataDir, 'tmp'));
  if (!onS3) return local;
  return [...local, ...(await objectsUnder(dataDir, 'uploads/')).map((k) => `s3:uploads/${k}`)].sort();
}

/** Every regular file under `dir` (relative paths, sorted); [] when `dir` does not exist. */
export async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => relative(dir, join(e.parentPath, e.name)))
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Replaces a stored blob's bytes (a corrupted disk or bucket, for verify): its file, or its object in S3 mode. */
export async function overwriteBlob(dataDir: string, digest: string, bytes: Buffer): Promise<void> {
  if (!onS3) return writeFile(join(dataDir, blobPath(digest)), bytes);
  await withClient((c) => c.send(new PutObjectCommand({ Bucket: MATRIX_BUCKET, Key: prefixFor(dataDir) + blobPath(digest), Body: bytes })));
}

/** Whether verify moved the blob aside: `quarantine/<alg>-<hex>` under dataDir, or under the prefix in S3 mode. */
export async function quarantined(dataDir: string, digest: string): Promise<boolean> {
  const name = `quarantine/${digest.replace(':', '-')}`;
  if (!onS3) return access(join(dataDir, name)).then(() => true, () => false);
  return (await objectsUnder(dataDir, 'quarantine/')).includes(name.slice('quarantine/'.length));
}

/**
 * Bytes an upload session has stored so far: its file tmp/<id> on the filesystem; in S3 mode the session
 * objects uploads/<id>/<offset> (what a resuming replica would find). -1 when there is nothing.
 */
export async function sessionBytes(dataDir: string, id: string): Promise<number> {
  if (!onS3) return stat(join(dataDir, 'tmp', id)).then((st) => st.size, () => -1);
  const root = prefixFor(dataDir) + `uploads/${id}/`;
  return withClient(async (c) => {
    const r = await c.send(new ListObjectsV2Command({ Bucket: MATRIX_BUCKET, Prefix: root }));
    const segments = (r.Contents ?? []).filter((o) => /\/\d{16}$/.test(o.Key ?? ''));
    return segments.length === 0 ? (r.Contents?.length ? 0 : -1) : segments.reduce((n, o) => n + (o.Size ?? 0), 0);
  });
}

/**
 * Whether a PATCH body still arriving has reached wharf's disk with at least `n` bytes: tmp/<id> on the
 * filesystem; in S3 mode the request's local temp file (`tmp/*-s3`), which becomes a session object only
 * once the body is whole.
 */
export async function receivingBytes(dataDir: string, id: string, n: number): Promise<boolean> {
  if (!onS3) return (await sessionBytes(dataDir, id)) >= n;
  const dir = join(dataDir, 'tmp');
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('-s3')) continue;
    if (((await stat(join(dir, name)).catch(() => undefined))?.size ?? 0) >= n) return true;
  }
  return false;
}

/** Multipart uploads begun and never completed or aborted under the dataDir's prefix (S3 mode; [] otherwise). */
export async function openMultipartUploads(dataDir: string): Promise<string[]> {
  if (!onS3) return [];
  const root = prefixFor(dataDir);
  return withClient(async (c) => {
    const r = await c.send(new ListMultipartUploadsCommand({ Bucket: MATRIX_BUCKET, Prefix: root }));
    return (r.Uploads ?? []).map((u) => (u.Key ?? '').slice(root.length)).sort();
  });
}

/**
 * Arguments an offline command (`wharf ls|gc|verify --data-dir`) needs besides --data-dir to find the blobs
 * of the wharf on `dataDir`: none on the filesystem; in S3 mode `--config` naming its storage.s3 (the file is
 * written into the data directory, so it goes with it).
 */
export async function offlineArgs(dataDir: string): Promise<string[]> {
  if (!onS3) return [];
  const file = join(dataDir, 'offline-storage.yaml');
  await writeFile(file, stringify({ storage: await s3StorageFor(dataDir) }));
  return ['--config', file];
}

/**
 * Bytes the wharf on `dataDir` keeps: every file under it (blobs, metadata, temp files) and, in S3 mode,
 * every object under its prefix (blobs, session objects, quarantine).
 */
/** Where a footprint's bytes are, by top-level folder (local `dir/`, S3 `s3:dir/`): for failure messages. */
export async function footprintBreakdown(dataDir: string): Promise<string> {
  const by = new Map<string, number>();
  const add = (k: string, n: number) => by.set(k, (by.get(k) ?? 0) + n);
  for (const f of await filesUnder(dataDir)) add(`${f.split('/')[0]}/`, (await stat(join(dataDir, f)).catch(() => ({ size: 0 }))).size);
  if (onS3) {
    const root = prefixFor(dataDir);
    await withClient(async (c) => {
      let token: string | undefined;
      do {
        const r = await c.send(new ListObjectsV2Command({ Bucket: MATRIX_BUCKET, Prefix: root, ...(token ? { ContinuationToken: token } : {}) }));
        for (const o of r.Contents ?? []) add(`s3:${(o.Key ?? '').slice(root.length).split('/')[0]}/`, o.Size ?? 0);
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
    });
  }
  return [...by].sort().map(([k, n]) => `${k} ${n}`).join(', ');
}

export async function footprint(dataDir: string): Promise<number> {
  let total = 0;
  for (const f of await filesUnder(dataDir)) total += (await stat(join(dataDir, f)).catch(() => ({ size: 0 }))).size;
  if (!onS3) return total;
  const root = prefixFor(dataDir);
  return withClient(async (c) => {
    let token: string | undefined;
    do {
      const r = await c.send(new ListObjectsV2Command({ Bucket: MATRIX_BUCKET, Prefix: root, ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of r.Contents ?? []) total += o.Size ?? 0;
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return total;
  });
}
