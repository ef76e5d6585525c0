/**
 * The Redis coordination primitives on a real Redis, as two replicas see them (two coordinators, own
 * connections): fetch leases, named leases, shared revalidation, memo invalidation, outage behaviour.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { digestOf } from '../../src/oci/index.js';
import { isRegistryError } from '../../src/oci/errors.js';
import { createRedisClient, openMetadataStore, RedisCoordinator, startInvalidation, type MemoMetadataStore } from '../../src/store/index.js';
import type { TagRecord } from '../../src/store/types.js';
import { deleteKeys, REDIS_URL, sleep, startRedisServer, testPrefix } from './cluster-helpers.js';

const prefix = testPrefix();
const clients: Array<Redis | import('ioredis').Cluster> = [];
after(async () => {
  for (const c of clients) c.disconnect();
  await deleteKeys(REDIS_URL, prefix);
});

async function client(url = REDIS_URL): Promise<Redis | import('ioredis').Cluster> {
  const c = createRedisClient({ url, keyPrefix: prefix });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

async function replica(id: string, opts: { fetchLeaseMs?: number } = {}): Promise<RedisCoordinator> {
  const c = new RedisCoordinator(await client(), { keyPrefix: prefix, self: { id, url: `http://127.0.0.1:1/${id}` }, pollMs: 30, ...opts });
  await c.start();
  return c;
}

const digest = (s: string) => digestOf(`${s}-${prefix}`);

describe('RedisCoordinator', () => {
  it('one replica gets the fetch lease; the other learns who holds it and is released when it is let go', async () => {
    const [a, b] = [await replica('ra'), await replica('rb')];
    const d = digest('one');
    const ca = await a.claimFetch(d);
    assert.equal(ca.kind, 'mine');
    const cb = await b.claimFetch(d);
    assert.deepEqual(cb, { kind: 'peer', holder: { id: 'ra', url: 'http://127.0.0.1:1/ra' } });
    let released = false;
    const waiting = b.waitForRelease(d).then(() => (released = true));
    await sleep(100);
    assert.equal(released, false);
    if (ca.kind === 'mine') await ca.lease.release();
    await waiting;
    assert.equal((await b.claimFetch(d)).kind, 'mine');
    assert.equal(a.peerToken(), b.peerToken());
    assert.ok(a.peerToken());
  });

  it('a lease is renewed while held and expires when its holder stops renewing (dies)', async () => {
    const a = await replica('ra2', { fetchLeaseMs: 300 });
    const b = await replica('rb2', { fetchLeaseMs: 300 });
    const d = digest('renew');
    const ca = await a.claimFetch(d);
    assert.equal(ca.kind, 'mine');
    await sleep(800); // well past the TTL: renewals kept it
    assert.equal((await b.claimFetch(d)).kind, 'peer');
    if (ca.kind === 'mine') assert.equal(ca.lease.lost, false);
    // A holder that dies stops renewing: simulate by dropping its connection.
    clients[clients.length - 2]!.disconnect();
    const t0 = Date.now();
    await b.waitForRelease(d);
    assert.ok(Date.now() - t0 < 1000, 'released by expiry within the TTL');
    assert.equal((await b.claimFetch(d)).kind, 'mine');
    await sleep(400);
    if (ca.kind === 'mine') assert.equal(ca.lease.lost, true, 'the dead holder knows it lost the lease');
    if (ca.kind === 'mine') assert.equal(ca.lease.signal.aborted, true, 'and its signal stops the work only a holder may do');
  });

  it('a late release does not free a lease another replica took over', async () => {
    const a = await replica('ra3', { fetchLeaseMs: 200 });
    const b = await replica('rb3', { fetchLeaseMs: 5000 });
    const r = await client();
    const d = digest('late');
    const ca = await a.claimFetch(d);
    assert.equal(ca.kind, 'mine');
    await r.del(`${prefix}lease:blob:${d}`); // as if it expired
    const cb = await b.claimFetch(d);
    assert.equal(cb.kind, 'mine');
    if (ca.kind === 'mine') await ca.lease.release();
    assert.equal((await a.claimFetch(d)).kind, 'peer', "b's lease survives a's release");
  });

  it('named leases: one holder at a time (eviction)', async () => {
    const [a, b] = [await replica('ra4'), await replica('rb4')];
    const la = await a.lease('eviction', 2000);
    assert.ok(la);
    assert.equal(await b.lease('eviction', 2000), undefined);
    await la.release();
    assert.ok(await b.lease('eviction', 2000));
  });

  it('revalidation is claimed once per tag per window across replicas', async () => {
    const [a, b] = [await replica('ra5'), await replica('rb5')];
    const claims = await Promise.all([a, b, a, b].map((r) => r.claimRevalidation('up/team/app', 'latest', 300)));
    assert.equal(claims.filter(Boolean).length, 1);
    await sleep(350);
    assert.equal(await b.claimRevalidation('up/team/app', 'latest', 300), true, 'next window');
  });
});

describe('memo invalidation over pub/sub', () => {
  it("a write on one replica drops the other replica's cached entry", async () => {
    const rec = (s: string): TagRecord => ({ digest: digestOf(s), mediaType: 'm', size: 1, checkedAt: 1, origin: 'upstream' });
    const open = async (id: string): Promise<MemoMetadataStore> => {
      let publish: (k: string) => Promise<void> = async () => undefined;
      const memo = await openMetadataStore({ dataDir: '/nonexistent', redis: { url: REDIS_URL, keyPrefix: prefix }, memo: { ttlMs: 60_000, onChange: (k) => publish(k) } });
      const bus = await startInvalidation({ publisher: await client(), subscriber: await client(), channel: `${prefix}invalidate`, selfId: id, onRemote: (k) => memo.invalidate(k) });
      publish = (k) => bus.publish(k);
      return memo;
    };
    const [a, b] = [await open('ma'), await open('mb')];
    try {
      await a.putTag('r', 't', rec('1'));
      assert.equal((await b.getTag('r', 't'))?.digest, digestOf('1'));
      await a.putTag('r', 't', rec('2'));
      const deadline = Date.now() + 1000;
      while ((await b.getTag('r', 't'))?.digest !== digestOf('2')) {
        assert.ok(Date.now() < deadline, 'b still serves the old tag (ttl is 60 s, so only the invalidation can fix it)');
        await sleep(10);
      }
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('metadata store during a Redis outage', () => {
  it('serves what it read or wrote before, fails the rest with UNAVAILABLE within 1 s, and recovers', async (t) => {
    const server = await startRedisServer();
    t.after(() => server.stop());
    const memo = await openMetadataStore({ dataDir: '/nonexistent', redis: { url: server.url, keyPrefix: 'x:' } });
    t.after(() => memo.close());
    const d = digestOf('blob');
    await memo.link('r', d, { kind: 'blob', size: 4, origin: 'upstream', linkedAt: 1 });
    await memo.putTag('r', 't', { digest: d, mediaType: 'm', size: 4, checkedAt: 1, origin: 'upstream' });
    await server.stop();
    await sleep(100);
    assert.equal((await memo.getLink('r', d))?.size, 4);
    assert.equal((await memo.getTag('r', 't'))?.digest, d);
    for (const op of [() => memo.getLink('r', digestOf('other')), () => memo.putTag('r', 'u', { digest: d, mediaType: 'm', size: 4, checkedAt: 1, origin: 'local' }), () => memo.getUpload('u1')]) {
      const t0 = Date.now();
      await assert.rejects(op(), (e: unknown) => isRegistryError(e) && e.code === 'UNAVAILABLE' && e.status === 503);
      assert.ok(Date.now() - t0 < 1000);
    }
    await server.start();
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await memo.ping();
        break;
      } catch {
        assert.ok(Date.now() < deadline, 'reconnects on its own');
        await sleep(100);
      }
    }
    assert.equal(await memo.getLink('r', digestOf('other')), undefined);
  });
});
