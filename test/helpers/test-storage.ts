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
import { HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after } from 'node:test';
import { startSwiftS3, type SwiftS3 } from './swift-s3.js';

export type TestStorage = 'fs' | 's3';

/** The backend this test process runs on (WHARF_TEST_STORAGE; default the filesystem). */
export function testStorage(): TestStorage {
  const v = process.env.WHARF_TEST_STORAGE ?? 'fs';
  if (v !== 'fs' && v !== 's3') throw new Error(`WHARF_TEST_STORAGE must be fs or s3, not ${JSON.stringify(v)}`);
  return v;
}

export const onS3 = testStorage() === 's3';

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
      accessKeyId: s.accessKeyId,
      secretAccessKey: s.secretAccessKey,
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
