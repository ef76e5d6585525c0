import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, ConfigFileError, loadConfig, parseDuration, UnitError, type S3StorageConfig } from '../config/index.js';
import { AdminService } from '../core/admin-service.js';
import { UpstreamNamespaces } from '../core/namespaces.js';
import { silentLogger } from '../observability/types.js';
import { instanceId, openS3Store } from '../s3-store.js';
import { BucketInUseError, EmbeddedMetadataStore, FsBlobStore, LockHeldError, type BlobStore } from '../store/index.js';
import { CliError } from './common.js';

export interface OfflineOptions {
  uploadExpiry?: string;
  /** wharf's configuration (--config, else $WHARF_CONFIG): where its blobs are (storage.s3) */
  config?: string;
}

/**
 * The stores of a data directory opened directly (no wharf running). The metadata store's LOCK makes sure no
 * wharf is using it meanwhile: two processes must never write one embedded store. Blobs are where wharf's
 * configuration puts them: under the data directory, or in the bucket its `storage.s3` names.
 */
export async function withOffline<T>(
  dataDir: string,
  opts: OfflineOptions,
  env: Record<string, string | undefined>,
  run: (admin: AdminService) => Promise<T>,
): Promise<T> {
  const uploadExpiryMs = duration('--upload-expiry', opts.uploadExpiry ?? '24h');
  const s3 = await offlineStorage(dataDir, opts.config, env);
  await assertStore(dataDir, s3 !== undefined);
  let meta: EmbeddedMetadataStore;
  try {
    meta = await EmbeddedMetadataStore.open(join(dataDir, 'meta'));
  } catch (e) {
    if (e instanceof LockHeldError) {
      throw new CliError(`data directory ${dataDir} is in use by a running wharf (pid ${e.pid}); run the command through it with --url http://HOST:PORT`);
    }
    throw new CliError(`cannot open the metadata in ${dataDir}: ${(e as Error).message}`);
  }
  let release: (() => Promise<void>) | undefined;
  try {
    let store: BlobStore;
    if (s3) {
      const bucket = await openS3Store(dataDir, s3).catch((e: Error) => {
        throw new CliError(e.message);
      });
      // The LOCK keeps out the wharf of this data directory; the bucket's claim keeps out a wharf on another
      // one that shares the bucket and prefix (this id is that replica's own, so its stale claim after a crash
      // does not block its own data directory).
      const claim = await bucket.claimSoleUse(await instanceId(dataDir, { create: false })).catch((e: Error) => {
        if (e instanceof BucketInUseError) throw new CliError(`${e.message}; stop that wharf, or run the command through it with --url http://HOST:PORT`);
        throw new CliError(`storage.s3: cannot claim the bucket: ${e.message}`);
      });
      release = () => claim.stop();
      store = bucket;
    } else {
      store = await FsBlobStore.open(dataDir, { create: false }).catch((e: Error) => {
        throw new CliError(`data directory ${dataDir} is not usable: ${e.message}`);
      });
    }
    const admin = new AdminService({
      store,
      meta,
      // Offline the names are the canonical keys (`docker.io/library/alpine`), whatever the configuration says.
      namespaces: new UpstreamNamespaces([]),
      upstreams: new Map(),
      cache: { highWatermark: 0.95, lowWatermark: 0.85 },
      uploadExpiryMs,
      // Nothing else writes this directory (or bucket prefix) while we hold the lock, so nothing in progress needs sparing.
      gcGraceMs: 0,
      isBusy: () => false,
      now: Date.now,
      logger: silentLogger,
    });
    return await run(admin);
  } finally {
    await release?.().catch(() => undefined);
    await meta.close();
  }
}

/**
 * `storage.s3` of wharf's configuration read as `serve` reads it (the file from --config or $WHARF_CONFIG, then
 * WHARF_STORAGE_* variables such as the secret key); undefined: blobs are under the data directory. Only the
 * storage variables are taken from the environment: WHARF_URL, WHARF_USERNAME, WHARF_PASSWORD and WHARF_ADMIN_*
 * belong to the CLI itself.
 */
async function offlineStorage(dataDir: string, file: string | undefined, env: Record<string, string | undefined>): Promise<S3StorageConfig | undefined> {
  const storageEnv: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('WHARF_STORAGE_')) storageEnv[k] = v;
  const path = file ?? (env.WHARF_CONFIG || undefined);
  if (path === undefined && Object.keys(storageEnv).length === 0) return undefined;
  let config;
  try {
    config = await loadConfig({ ...(path !== undefined ? { file: path } : {}), env: storageEnv, overrides: [{ path: 'dataDir', value: dataDir, source: '--data-dir' }] });
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(`invalid configuration: ${e.problems.join('; ')}`, 2);
    if (e instanceof ConfigFileError) throw new CliError(e.message, 2);
    throw e;
  }
  // Several replicas keep their metadata in Redis: no data directory holds it, so only a running wharf can help.
  if (config.redis) throw new CliError(`the configuration names redis (redis.url): the metadata is there, not in ${dataDir}; run the command through wharf with --url`);
  return config.storage.s3;
}

/**
 * Offline commands read a store; they never make one. A directory wharf has served from holds (embedded
 * metadata) `meta/` and, with blobs on the filesystem, `blobs/`: anything else is a wrong --data-dir, reported
 * before anything is created.
 */
async function assertStore(dataDir: string, blobsInBucket: boolean): Promise<void> {
  const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);
  if (!(await isDir(dataDir))) throw new CliError(`data directory ${dataDir} does not exist (--data-dir is the dataDir wharf serves from)`);
  const missing = [];
  for (const sub of blobsInBucket ? ['meta'] : ['blobs', 'meta']) if (!(await isDir(join(dataDir, sub)))) missing.push(`${sub}/`);
  if (missing.length === 0) return;
  const hint =
    missing.length === 1 && missing[0] === 'meta/'
      ? '; with Redis the metadata is there: run the command through wharf with --url'
      : missing.length === 1 && missing[0] === 'blobs/'
        ? '; if wharf keeps its blobs in object storage (storage.s3), name its configuration with --config'
        : '';
  throw new CliError(`${dataDir} holds no wharf store: expected ${missing.join(' and ')} in it (a wharf dataDir with the embedded metadata store)${hint}`);
}

export function duration(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (e) {
    if (e instanceof UnitError) throw new CliError(`${flag}: ${e.message}`, 2);
    throw e;
  }
}
