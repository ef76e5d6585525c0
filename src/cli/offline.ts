import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDuration, UnitError } from '../config/index.js';
import { AdminService } from '../core/admin-service.js';
import { UpstreamNamespaces } from '../core/namespaces.js';
import { silentLogger } from '../observability/types.js';
import { EmbeddedMetadataStore, FsBlobStore, LockHeldError } from '../store/index.js';
import { CliError } from './common.js';

export interface OfflineOptions {
  uploadExpiry?: string;
}

/**
 * The stores of a data directory opened directly (no wharf running). The metadata store's LOCK makes sure no
 * wharf is using it meanwhile: two processes must never write one embedded store.
 */
export async function withOffline<T>(dataDir: string, opts: OfflineOptions, run: (admin: AdminService) => Promise<T>): Promise<T> {
  const uploadExpiryMs = duration('--upload-expiry', opts.uploadExpiry ?? '24h');
  await assertStore(dataDir);
  const store = await FsBlobStore.open(dataDir, { create: false }).catch((e: Error) => {
    throw new CliError(`data directory ${dataDir} is not usable: ${e.message}`);
  });
  let meta: EmbeddedMetadataStore;
  try {
    meta = await EmbeddedMetadataStore.open(join(dataDir, 'meta'));
  } catch (e) {
    if (e instanceof LockHeldError) {
      throw new CliError(`data directory ${dataDir} is in use by a running wharf (pid ${e.pid}); run the command through it with --url http://HOST:PORT`);
    }
    throw new CliError(`cannot open the metadata in ${dataDir}: ${(e as Error).message}`);
  }
  try {
    const admin = new AdminService({
      store,
      meta,
      // Offline there is no configuration: names are the canonical keys (`docker.io/library/alpine`).
      namespaces: new UpstreamNamespaces([]),
      upstreams: new Map(),
      cache: { highWatermark: 0.95, lowWatermark: 0.85 },
      uploadExpiryMs,
      // Nothing else writes this directory while we hold the lock, so nothing in progress needs sparing.
      gcGraceMs: 0,
      isBusy: () => false,
      now: Date.now,
      logger: silentLogger,
    });
    return await run(admin);
  } finally {
    await meta.close();
  }
}

/**
 * Offline commands read a store; they never make one. A directory wharf has served from holds `blobs/` and
 * (embedded metadata) `meta/`: anything else is a wrong --data-dir, reported before anything is created.
 */
async function assertStore(dataDir: string): Promise<void> {
  const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false);
  if (!(await isDir(dataDir))) throw new CliError(`data directory ${dataDir} does not exist (--data-dir is the dataDir wharf serves from)`);
  const missing = [];
  for (const sub of ['blobs', 'meta']) if (!(await isDir(join(dataDir, sub)))) missing.push(`${sub}/`);
  if (missing.length === 0) return;
  const redisHint = missing.length === 1 && missing[0] === 'meta/' ? '; with Redis the metadata is there: run the command through wharf with --url' : '';
  throw new CliError(`${dataDir} holds no wharf store: expected ${missing.join(' and ')} in it (a wharf dataDir with the embedded metadata store)${redisHint}`);
}

export function duration(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (e) {
    if (e instanceof UnitError) throw new CliError(`${flag}: ${e.message}`, 2);
    throw e;
  }
}
