import { after } from 'node:test';
import { Redis } from 'ioredis';
import { RedisMetadataStore } from '../../src/store/meta/redis.js';
import type { MetadataStore } from '../../src/store/types.js';
import { metadataStoreContract } from './metadata-store.contract.js';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';

const runPrefix = testPrefix();
let n = 0;

after(() => deleteKeys(REDIS_URL, runPrefix));

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
      await deleteKeys(REDIS_URL, keyPrefix);
    },
  };
});
