import { Redis } from 'ioredis';
import { join } from 'node:path';
import { EmbeddedMetadataStore } from './meta/embedded.js';
import { MemoMetadataStore, type MemoOptions } from './meta/memo.js';
import { RedisMetadataStore } from './meta/redis.js';
import type { MetadataStore } from './types.js';

export type * from './types.js';
export { FsBlobStore, isWriterId, WRITER_ID_RE, type FsBlobStoreOptions } from './blob/fs-blob-store.js';
export { nodeBlobFs, type BlobFs, type BlobFileHandle, type BlobStatResult } from './blob/blob-fs.js';
export { EmbeddedMetadataStore, type EmbeddedOptions, type RecoveryInfo } from './meta/embedded.js';
export { LockHeldError } from './meta/lock.js';
export { RedisMetadataStore, type RedisStoreOptions } from './meta/redis.js';
export { MemoMetadataStore, memoKeys, type MemoOptions } from './meta/memo.js';

export interface OpenMetadataStoreOptions {
  dataDir: string;
  redis?: { url: string; keyPrefix: string };
  memo?: MemoOptions;
}

/**
 * Redis when configured (shared by replicas), else the embedded store under `<dataDir>/meta`; the memo cache
 * in front either way. Fails fast when Redis does not answer a PING.
 */
export async function openMetadataStore(opts: OpenMetadataStoreOptions): Promise<MetadataStore> {
  let inner: MetadataStore;
  if (opts.redis) {
    const client = new Redis(opts.redis.url, { lazyConnect: true, maxRetriesPerRequest: 2 });
    inner = new RedisMetadataStore(client, { keyPrefix: opts.redis.keyPrefix });
    try {
      await client.connect();
      await inner.ping();
    } catch (e) {
      client.disconnect();
      throw new Error(`metadata store: cannot reach redis at ${redactUrl(opts.redis.url)} (${(e as Error).message})`, { cause: e });
    }
  } else {
    inner = await EmbeddedMetadataStore.open(join(opts.dataDir, 'meta'));
  }
  return new MemoMetadataStore(inner, opts.memo);
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}
