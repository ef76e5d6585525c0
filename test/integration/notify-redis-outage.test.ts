/**
 * Webhooks while Redis (the shared queue) is away: cached pulls keep succeeding, their events are spooled in
 * the data directory and forwarded into the stream, in order, once Redis answers again. A private
 * redis-server without persistence, stopped and restarted by the test; a real Distribution upstream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeImage } from '../helpers/oci-image.js';
import { getBlob, getManifest, show, startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook.js';
import type { WharfProcess } from '../helpers/wharf.js';
import { startRedisServer, testPrefix, type RedisServer } from './cluster-helpers.js';

describe('notifications: Redis outage', () => {
  let hub: MirrorUpstream;
  let redis: RedisServer;
  let rx: WebhookReceiver;
  let w: WharfProcess;

  before(async () => {
    rx = await startReceiver('ok');
    hub = await startHubUpstream();
    redis = await startRedisServer();
    w = await startMirror([hub.config()], {
      redis: { url: redis.url, keyPrefix: testPrefix() },
      notifications: { endpoints: [{ name: 'ci', url: rx.url, ignore: { actions: ['cache'] } }] },
    });
  });
  after(async () => {
    await w?.stop();
    await redis?.stop();
    await hub?.stop();
    await rx?.stop();
  });

  it('serves cached pulls during the outage and delivers their events, in order, once Redis is back', async () => {
    const img = makeImage({ format: 'docker', layers: 2 });
    await hub.push('library/alpine', '3', img);
    const blobs = [img.config.digest, ...img.layers.map((l) => l.digest)];
    const pulls = (e: Array<Record<string, any>>) => e.filter((x) => x.action === 'pull');
    // Cached while Redis is up.
    assert.equal((await getManifest(w, 'library/alpine', img.manifestDigest)).status, 200);
    for (const d of blobs) assert.equal((await getBlob(w, 'library/alpine', d)).status, 200);
    await rx.waitFor((e) => pulls(e).length >= 1 + blobs.length, 30_000, 'pulls before the outage');
    const before = pulls(rx.events()).length;

    await redis.stop();
    const order: string[] = [];
    for (let round = 0; round < 2; round++) {
      const m = await getManifest(w, 'library/alpine', img.manifestDigest);
      assert.equal(m.status, 200, `cached manifest during the outage: ${show(m)}`);
      order.push(img.manifestDigest);
      for (const d of blobs) {
        const res = await getBlob(w, 'library/alpine', d);
        assert.equal(res.status, 200, `cached blob during the outage: ${show(res)}`);
        order.push(d);
      }
    }
    assert.equal(pulls(rx.events()).length, before, 'nothing delivered while the queue is away');

    await redis.start();
    await rx.waitFor((e) => pulls(e).length >= before + order.length, 60_000, 'pulls made during the outage');
    const seen = new Set<string>();
    const after = pulls(rx.events())
      .slice(before)
      .filter((e) => (seen.has(e.id) ? false : (seen.add(e.id), true)));
    assert.deepEqual(after.map((e) => e.target.digest), order, 'each pull once, in the order served');
    for (const e of after) assert.equal(e.target.repository, 'library/alpine');
  });
});
