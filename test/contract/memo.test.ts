import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf, ErrorCode, isRegistryError, RegistryError } from '../../src/oci/index.js';
import { EmbeddedMetadataStore } from '../../src/store/meta/embedded.js';
import { MemoMetadataStore, memoKeys } from '../../src/store/meta/memo.js';
import { readSnapshot, writeSnapshot } from '../../src/store/meta/snapshot.js';
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

describe('MemoMetadataStore during an outage of its inner store (issue 17 item 11)', () => {
  /**
   * A fake outage: the embedded store behind a switch that makes every call fail as a Redis connection
   * error does (the real outage, with a redis-server stopped, is in cluster-redis-outage.test.ts).
   */
  async function setup(t: { after(fn: () => Promise<void>): void }, graceMs: number) {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-memo-'));
    const inner = await EmbeddedMetadataStore.open(dir);
    const sw = { down: false };
    const outage = new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => (sw.down ? Promise.reject(new Error('Connection is closed.')) : (v as (...a: unknown[]) => unknown).apply(target, args));
      },
    });
    const clock = { now: 1_000_000 };
    const memo = new MemoMetadataStore(outage, {
      ttlMs: 1,
      outageGraceMs: graceMs,
      now: () => clock.now,
      mapError: (e) => (isRegistryError(e) ? e : new RegistryError(ErrorCode.UNAVAILABLE, 'down')),
    });
    t.after(async () => {
      sw.down = false;
      await memo.close();
      await rm(dir, { recursive: true, force: true });
    });
    return { memo, sw, clock };
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('serves last known tags and links for outageGrace, then fails; writes fail at once; degraded until the store answers', async (t) => {
    const { memo, sw, clock } = await setup(t, 60_000);
    await memo.putTag('r', 'v1', rec('a'));
    const link = { kind: 'blob' as const, size: 1, origin: 'upstream' as const, linkedAt: 1 };
    await memo.link('r', digestOf('a'), link);
    assert.equal((await memo.getTag('r', 'v1'))?.digest, digestOf('a'));
    assert.ok(await memo.getLink('r', digestOf('a')));
    assert.equal(memo.degradedSince(), undefined);

    sw.down = true;
    await sleep(5); // past the memo's 1 ms freshness: every read asks the inner store
    assert.equal((await memo.getTag('r', 'v1'))?.digest, digestOf('a'), 'last known tag served');
    assert.equal(memo.degradedSince(), clock.now);
    await assert.rejects(memo.putTag('r', 'v2', rec('b')), (e: unknown) => isRegistryError(e) && e.code === ErrorCode.UNAVAILABLE);
    await assert.rejects(memo.getTag('r', 'unknown'), (e: unknown) => isRegistryError(e) && e.code === ErrorCode.UNAVAILABLE);

    clock.now += 59_000;
    assert.ok(await memo.getLink('r', digestOf('a')), 'still within the grace');
    clock.now += 2_000;
    await assert.rejects(memo.getTag('r', 'v1'), (e: unknown) => isRegistryError(e) && e.code === ErrorCode.UNAVAILABLE, 'past outageGrace the last known tag is no longer served');

    sw.down = false;
    assert.equal((await memo.getTag('r', 'v1'))?.digest, digestOf('a'));
    assert.equal(memo.degradedSince(), undefined, 'the first answer ends the degraded mode');
  });

  it('a snapshot of what one process knew is served by the next only while the store fails, within the grace of its time', async (t) => {
    const first = await setup(t, 60_000);
    await first.memo.putTag('r', 'v1', rec('a'));
    await first.memo.putTag('r', 'v2', rec('b'));
    const link = { kind: 'blob' as const, size: 1, origin: 'upstream' as const, linkedAt: 1 };
    await first.memo.link('r', digestOf('a'), link);
    const takenAt = first.clock.now;
    const dir = await mkdtemp(join(tmpdir(), 'wharf-snapshot-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'replica.json');
    await writeSnapshot(file, first.memo.exportKnown(), takenAt);

    // The next process starts while its store (a Redis that no longer has these records) is down.
    const next = await setup(t, 60_000);
    next.clock.now = takenAt + 30_000;
    next.sw.down = true;
    next.memo.restoreKnown(await readSnapshot(file));
    assert.equal((await next.memo.getTag('r', 'v1'))?.digest, digestOf('a'), 'a tag from the snapshot is served during the outage');
    assert.ok(await next.memo.getLink('r', digestOf('a')), 'a link from the snapshot is served during the outage');
    await assert.rejects(next.memo.putTag('r', 'v3', rec('c')), (e: unknown) => isRegistryError(e) && e.code === ErrorCode.UNAVAILABLE);
    next.clock.now = takenAt + 61_000;
    await assert.rejects(next.memo.getTag('r', 'v2'), (e: unknown) => isRegistryError(e) && e.code === ErrorCode.UNAVAILABLE, 'past outageGrace of the snapshot\'s time its tag is not served');

    // The store answers: what it says wins, and the snapshot is not served again in a later outage.
    next.clock.now = takenAt + 1_000;
    next.sw.down = false;
    assert.equal(await next.memo.getTag('r', 'v1'), undefined, 'deleted meanwhile: the store\'s answer, not the snapshot');
    await next.memo.ping();
    next.sw.down = true;
    await assert.rejects(next.memo.getTag('r', 'v2'), (e: unknown) => isRegistryError(e) && e.code === ErrorCode.UNAVAILABLE, 'once the store answered, the snapshot is not served again');
    assert.deepEqual(next.memo.exportKnown(), [], 'nothing known without the snapshot');
  });

  it('a damaged snapshot entry is skipped, not served', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-snapshot-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'replica.json');
    const good = { key: memoKeys.tag('r', 'v1'), value: rec('a'), at: 5 };
    await writeSnapshot(file, [good, { key: memoKeys.tag('r', 'v2'), value: { digest: 'nope' }, at: 5 } as never, { key: 'x', value: rec('a'), at: 5 }], 5);
    assert.deepEqual(await readSnapshot(file), [good]);
    assert.deepEqual(await readSnapshot(join(dir, 'absent.json')), []);
  });
});
