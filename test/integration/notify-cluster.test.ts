/**
 * Webhooks with two real replicas sharing Redis and the data volume: one queue (a Redis stream), each
 * event delivered once per endpoint by whichever replica holds the endpoint, none lost when one dies.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { pushBlob, startReceiver, type WebhookReceiver } from '../helpers/webhook.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';


function pushes(events: Array<Record<string, any>>): Array<{ id: string; digest: string }> {
  return events.filter((e) => e.action === 'push').map((e) => ({ id: e.id, digest: e.target.digest }));
}

describe('notifications: two replicas share one queue', () => {
  let dir: TempDir;
  let rx: WebhookReceiver;
  let a: WharfProcess;
  let b: WharfProcess;
  const keyPrefix = testPrefix();

  before(async () => {
    dir = await tempDir('wharf-notify-cluster-');
    rx = await startReceiver('ok');
    const config = {
      upstreams: [],
      redis: { url: REDIS_URL, keyPrefix },
      notifications: { endpoints: [{ name: 'ci', url: rx.url, timeout: '1s', threshold: 2, backoff: '100ms', maxBackoff: '400ms' }] },
    };
    const dataDir = `${dir.path}/data`;
    [a, b] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    await rx?.stop();
    await deleteKeys(REDIS_URL, keyPrefix);
    await dir?.cleanup();
  });

  it('delivers pushes made on both replicas once each, in the order they were made', async () => {
    const pushed: string[] = [];
    for (let i = 0; i < 20; i++) pushed.push(await pushBlob(i % 2 === 0 ? a.url : b.url, 'team/app'));
    await rx.waitFor((e) => pushes(e).length >= pushed.length, 30_000, 'pushes from both replicas');
    // Both replicas run a dispatcher; give a duplicate the time to show up before counting.
    await new Promise((r) => setTimeout(r, 1000));
    const got = pushes(rx.events());
    assert.deepEqual(got.map((p) => p.digest), pushed, 'each event once, in order');
    assert.equal(new Set(got.map((p) => p.id)).size, got.length);
  });

  it('loses nothing when the replica delivering dies with events pending', async () => {
    rx.mode = 'fail';
    const before = pushes(rx.events()).length;
    const pushed: string[] = [];
    for (let i = 0; i < 10; i++) pushed.push(await pushBlob(i % 2 === 0 ? a.url : b.url, 'team/app'));
    const deadline = Date.now() + 20_000;
    while (rx.refused < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    assert.ok(rx.refused >= 2, 'deliveries were tried and refused');
    // The replica holding the endpoint's delivery lease dies hard; the other takes over once the lease expires.
    const r = new Redis(REDIS_URL);
    const holderId = await r.get(`${keyPrefix}notify:lease:ci`).finally(() => r.disconnect());
    assert.ok(holderId, 'a replica holds the endpoint');
    const holder = [a, b].find((w) => w.logs().includes(`"replica":"${holderId}"`));
    assert.ok(holder, `replica ${holderId} found by its log`);
    await holder.kill();
    rx.mode = 'ok';
    await rx.waitFor((e) => pushes(e).length >= before + pushed.length, 60_000, 'pending pushes after a replica died');
    const seen = new Set<string>();
    const firsts = pushes(rx.events()).slice(before).filter((p) => (seen.has(p.id) ? false : (seen.add(p.id), true)));
    assert.deepEqual(firsts.map((p) => p.digest), pushed, 'none lost, order kept');
  });
});
