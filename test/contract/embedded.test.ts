import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedMetadataStore } from '../../src/store/meta/embedded.js';
import type { MetadataStore } from '../../src/store/types.js';
import { metadataStoreContract } from './metadata-store.contract.js';

metadataStoreContract('embedded', async ({ now }) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-meta-'));
  let store: MetadataStore = await EmbeddedMetadataStore.open(dir, { now });
  return {
    store,
    reopen: async () => {
      await store.close();
      store = await EmbeddedMetadataStore.open(dir, { now });
      return store;
    },
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
