/**
 * The spool in front of the Redis stream, against a real redis-server (persisted, on its own port) that the
 * test stops and starts: events appended while Redis is away (also from start-up on) are fsynced locally and
 * reach the stream in order once it answers; what a closed (or crashed) process left in its spool is
 * forwarded by the next one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { QueuedEvent } from '../../src/notify/envelope.js';
import { Journal } from '../../src/notify/journal.js';
import { RedisStreamQueue } from '../../src/notify/redis-queue.js';
import { SPOOL_READER, SpoolingQueue } from '../../src/notify/spool.js';
import { connectRedis, createRedisClient } from '../../src/store/index.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startRedisServer, testPrefix, type RedisServer } from './cluster-helpers.js';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

function ev(n: number): QueuedEvent {
  return { key: 'team/app', event: { id: `id-${n}`, timestamp: new Date(0).toISOString(), action: 'push', target: { repository: 'team/app' }, request: {}, actor: {}, source: {} } };
}

describe('notifications: spool in front of the Redis stream', () => {
  let dir: TempDir;
  let aof: TempDir;
  let redis: RedisServer;
  const keyPrefix = testPrefix();

  before(async () => {
    dir = await tempDir('wharf-spool-');
    aof = await tempDir('wharf-spool-aof-');
    redis = await startRedisServer({ aofDir: aof.path });
  });
  after(async () => {
    await redis?.stop();
    await aof?.cleanup();
    await dir?.cleanup();
  });

  const open = async (): Promise<SpoolingQueue> => {
    const spool = await Journal.open({ dir: dir.path, endpoints: [{ name: SPOOL_READER, maxPending: 1000 }], now: Date.now, onDrop: () => undefined });
    const q = new SpoolingQueue({
      spool,
      logger: quiet,
      connect: async () => {
        const cfg = { url: redis.url, keyPrefix };
        const client = createRedisClient(cfg);
        client.on('error', () => undefined);
        await connectRedis(client, cfg);
        return RedisStreamQueue.open(client, { keyPrefix, replicaId: 'r1', endpoints: [{ name: 'ci', maxPending: 1000, timeout: 1000 }] });
      },
    });
    await q.start();
    return q;
  };

  async function streamIds(want: number): Promise<string[]> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
      r.on('error', () => undefined);
      const got = await r
        .connect()
        .then(() => r.xrange(`${keyPrefix}notify:events`, '-', '+'))
        .then((entries) => entries.map(([, f]) => (JSON.parse(f[1]!) as QueuedEvent).event.id))
        .catch(() => [] as string[])
        .finally(() => r.disconnect());
      if (got.length >= want || Date.now() > deadline) return got;
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  it('spools from start-up while Redis is away, forwards in order when it answers, then goes straight to the stream', async () => {
    await redis.stop();
    const q = await open();
    await q.append([ev(1), ev(2)]);
    await q.append([ev(3)]);
    assert.equal((await q.pending('ci')).count, 3, 'the spooled events count as pending');
    await redis.start();
    assert.deepEqual(await streamIds(3), ['id-1', 'id-2', 'id-3']);
    await q.append([ev(4)]);
    assert.deepEqual(await streamIds(4), ['id-1', 'id-2', 'id-3', 'id-4']);

    // Away again; the process closes (or dies) with events spooled; the next one forwards them.
    await redis.stop();
    await q.append([ev(5), ev(6)]);
    await q.close();
    await redis.start();
    const next = await open();
    try {
      assert.deepEqual(await streamIds(6), ['id-1', 'id-2', 'id-3', 'id-4', 'id-5', 'id-6']);
      const read = await next.read('ci', 10);
      assert.deepEqual(read.map((e) => e.q.event.id), ['id-1', 'id-2', 'id-3', 'id-4', 'id-5', 'id-6'], 'the endpoint reads them in order');
    } finally {
      await next.close();
    }
  });
});
