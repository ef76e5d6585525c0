import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3StorageConfig } from './config/types.js';
import { S3BlobStore, type StorageObserver } from './store/index.js';

/**
 * The bucket store a configuration names, as `serve` and the offline commands open it: the process's own
 * dataDir keeps only its temp files. The secret is read here and never reaches a log.
 */
export async function openS3Store(dataDir: string, s3: S3StorageConfig, observer?: StorageObserver): Promise<S3BlobStore> {
  const secretAccessKey = s3.secretAccessKeyFile ? (await readFile(s3.secretAccessKeyFile, 'utf8')).trim() : s3.secretAccessKey;
  return S3BlobStore.open({
    s3: { ...s3, prefix: s3.prefix ?? '', secretAccessKey },
    localDir: join(dataDir, 'tmp'),
    ...(observer ? { observer } : {}),
  });
}

/**
 * This replica's id, kept in its data dir so a restart is recognised as the same owner of the bucket. With
 * `create: false` (offline commands, which never write a store's files) a data dir without one gets a fresh id.
 */
export async function instanceId(dataDir: string, opts: { create: boolean } = { create: true }): Promise<string> {
  const path = join(dataDir, 'instance-id');
  const known = await readFile(path, 'utf8').catch(() => '');
  if (/^[a-f0-9]{32}$/.test(known.trim())) return known.trim();
  const id = randomBytes(16).toString('hex');
  if (opts.create) await writeFile(path, `${id}\n`);
  return id;
}
