import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../../src/oci/index.js';
import { EmbeddedMetadataStore } from '../../src/store/meta/embedded.js';
import { MemoMetadataStore, memoKeys } from '../../src/store/meta/memo.js';
import type { MetadataStore, TagRecord } from '../../src/store/types.js';
import { metadataStoreContract } from './metadata-store.contract.js';

metadataStoreContract('memo over embedded', async ({ now }) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-memo-'));
  let store: MetadataStore = new MemoMetadataStore(await EmbeddedMetadataStore.open(dir, { now }));
  return {
    store,
    reopen: async () => {
      await store.close();
      store = new MemoMetadataStore(await EmbeddedMetadataStore.open(dir, { now }));
      return store;
    },
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

const rec = (s: string): TagRecord => ({ digest: digestOf(s), mediaType: 'm', size: 1, checkedAt: 1, origin: 'upstream' });

describe('MemoMetadataStore caching', () => {
  async function setup(t: { after(fn: () => Promise<void>): void }) {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-memo-'));
    const inner = await EmbeddedMetadataStore.open(dir);
    const changes: string[] = [];
    const memo = new MemoMetadataStore(inner, { ttlMs: 60_000, onChange: (k) => void changes.push(k) });
    t.after(async () => {
      await memo.close();
      await rm(dir, { recursive: true, force: true });
    });
    return { inner, memo, changes };
  }

  it('serves repeated reads from the cache until invalidated', async (t) => {
    const { inner, memo } = await setup(t);
    await memo.putTag('r', 'v', rec('1'));
    assert.equal((await memo.getTag('r', 'v'))?.digest, digestOf('1'));
    await inner.putTag('r', 'v', rec('2')); // another replica's write, invisible to this cache
    assert.equal((await memo.getTag('r', 'v'))?.digest, digestOf('1'));
    memo.invalidate(memoKeys.tag('r', 'v'));
    assert.equal((await memo.getTag('r', 'v'))?.digest, digestOf('2'));
  });

  it('never returns a stale value after a write through the same instance, misses included', async (t) => {
    const { memo, changes } = await setup(t);
    const d = digestOf('blob');
    assert.equal(await memo.getLink('r', d), undefined); // caches the miss
    await memo.link('r', d, { kind: 'blob', size: 1, origin: 'local', linkedAt: 1 });
    assert.equal((await memo.getLink('r', d))?.size, 1);
    await memo.unlink('r', d);
    assert.equal(await memo.getLink('r', d), undefined);
    await memo.markRepo('r', { local: true });
    assert.deepEqual(await memo.getRepo('r'), { local: true, mirrored: false });
    await memo.markRepo('r', { mirrored: true });
    assert.deepEqual(await memo.getRepo('r'), { local: true, mirrored: true });
    assert.deepEqual(changes, [memoKeys.link('r', d), memoKeys.link('r', d), memoKeys.repo('r'), memoKeys.repo('r')]);
  });

  it('a read racing a write does not cache the old value', async (t) => {
    const { inner, memo } = await setup(t);
    await inner.putTag('r', 'v', rec('old'));
    let releaseRead!: () => void;
    const gate = new Promise<void>((r) => (releaseRead = r));
    const realGet = inner.getTag.bind(inner);
    inner.getTag = async (repo, tag) => {
      const v = await realGet(repo, tag); // reads the old value...
      await gate; // ...and is slow to return it
      return v;
    };
    const slowRead = memo.getTag('r', 'v');
    await memo.putTag('r', 'v', rec('new'));
    releaseRead();
    assert.equal((await slowRead)?.digest, digestOf('old'));
    inner.getTag = realGet;
    assert.equal((await memo.getTag('r', 'v'))?.digest, digestOf('new'));
  });

  it('a write resolves only once the other replicas were told; a failed one does not wait for the telling', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-memo-'));
    const inner = await EmbeddedMetadataStore.open(dir);
    let told!: () => void;
    let telling = 0;
    const memo = new MemoMetadataStore(inner, {
      onChange: () => {
        telling++;
        return new Promise<void>((r) => (told = r));
      },
    });
    t.after(async () => {
      await memo.close();
      await rm(dir, { recursive: true, force: true });
    });
    let done = false;
    const put = memo.putTag('r', 'v', rec('1')).then(() => (done = true));
    while (telling === 0) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, 'the push is not acknowledged before the broadcast is');
    told();
    await put;
    inner.putTag = () => Promise.reject(new Error('disk gone'));
    await assert.rejects(memo.putTag('r', 'v', rec('2')), /disk gone/); // would hang if it waited on `told`
    assert.equal(telling, 2, 'a failed write is still announced: it may have landed');
  });

  it('callers mutating a returned record do not change the cache', async (t) => {
    const { memo } = await setup(t);
    await memo.putTag('r', 'v', rec('1'));
    const got = await memo.getTag('r', 'v');
    assert.ok(got);
    got.size = 999;
    assert.equal((await memo.getTag('r', 'v'))?.size, 1);
  });
});
