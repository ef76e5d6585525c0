import { after } from 'node:test';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisMetadataStore } from '../../src/store/meta/redis.js';
import type { MetadataStore } from '../../src/store/types.js';
import { metadataStoreContract } from './metadata-store.contract.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const runPrefix = `wharf-test:${randomBytes(6).toString('hex')}:`;
let n = 0;

/** Deletes only this run's keys. */
async function dropKeys(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { lazyConnect: true });
  await r.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    await r.quit();
  }
}

after(() => dropKeys(runPrefix));

metadataStoreContract('redis', async ({ now }) => {
  const keyPrefix = `${runPrefix}${n++}:`;
  const connect = () => new RedisMetadataStore(new Redis(REDIS_URL, { maxRetriesPerRequest: 1 }), { keyPrefix, now });
  let store: MetadataStore = connect();
  return {
    store,
    reopen: async () => {
      await store.close();
      store = connect();
      return store;
    },
    cleanup: async () => {
      await store.close();
      await dropKeys(keyPrefix);
    },
  };
});
