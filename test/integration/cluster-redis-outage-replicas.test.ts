/**
 * Issue 17 item 11 with two replicas: a real redis-server (its own port, appendonly with fsync) is stopped
 * under traffic and started again. Cached pulls through both replicas keep succeeding, by tag and by digest;
 * a push during the outage is refused with 503 and a reason; a replica restarted during the outage comes back
 * serving what it served (its local snapshot); everything pushed before the outage is there after it, for a
 * replica started once Redis is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { pullImage, sleep, startRedisServer, testPrefix, type RedisServer } from './cluster-helpers.js';

describe('Redis outage under two replicas', () => {
  let registry: RegistryProcess;
  let redis: RedisServer;
  let shared: TempDir;
  let aof: TempDir;
  let a: WharfProcess;
  let b: WharfProcess;
  let c: WharfProcess | undefined;
  let config: object;
  const mirrored = makeImage({ layers: 2, layerSize: 50_000 });
  const local = makeImage({ layers: 1 });

  before(async () => {
    registry = await startRegistry();
    [shared, aof] = await Promise.all([tempDir('wharf-outage-shared-'), tempDir('wharf-outage-aof-')]);
    redis = await startRedisServer({ aofDir: aof.path });
    config = {
      upstreams: [{ name: 'up', url: registry.url, default: true, tagFreshness: '1h' }],
      redis: { url: redis.url, keyPrefix: testPrefix(), outageGrace: '10m' },
    };
    [a, b] = await Promise.all([startWharf({ config, dataDir: shared.path }), startWharf({ config, dataDir: shared.path })]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
    await redis?.stop();
    await registry?.stop();
    await shared?.cleanup();
    await aof?.cleanup();
  });

  it('cached pulls go on through both replicas; pushes before the outage survive it', async () => {
    await pushImage(registry.url, 'acme/tool', '1', mirrored);
    await pushImage(a.url, 'team/app', '1', local);
    // The load balancer has sent pulls to both replicas before the outage, by tag and by digest (what a
    // replica has not read it cannot serve during one).
    for (const w of [a, b]) {
      await pullImage(w, 'acme/tool', '1', mirrored);
      await pullImage(w, 'acme/tool', mirrored.manifestDigest, mirrored);
      await pullImage(w, 'team/app', '1', local);
    }

    let running = true;
    const failures: string[] = [];
    let served = 0;
    // What the load balancer sends pulls to (a replica being restarted is taken out, as its readiness would).
    let pool = [a, b];
    let current: Promise<unknown> = Promise.resolve();
    const traffic = (async () => {
      for (let i = 0; running; i++) {
        const w = pool[i % pool.length]!;
        await (current = Promise.all([pullImage(w, 'acme/tool', '1', mirrored), pullImage(w, 'acme/tool', mirrored.manifestDigest, mirrored), pullImage(w, 'team/app', '1', local)]).then(
          () => served++,
          (e: Error) => failures.push(`${w === a ? 'a' : 'b'} (${pool.length === 1 ? 'b restarting' : 'both'}): ${e.message.slice(0, 120)}`),
        ));
      }
    })();
    try {
      await sleep(300);
      await redis.stop();
      const servedAtStop = served;
      // A push during the outage is refused at once, with the reason.
      const push = await request(`${b.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
      assert.equal(push.status, 503, describeResponse(push));
      assert.ok(errorCodes(push).includes('UNAVAILABLE'));
      assert.match(push.body.toString('utf8'), /writes are refused/);
      for (let i = 0; i < 100 && served < servedAtStop + 6; i++) await sleep(100);
      const degraded = JSON.parse((await request(`${a.url}/readyz`)).body.toString('utf8')) as { degraded?: boolean };
      assert.equal(degraded.degraded, true);
      assert.ok(served >= servedAtStop + 6, `pulls served during the outage: ${served - servedAtStop}`);
      // A replica restarted during the outage (an update rolling through) comes back serving what it served.
      pool = [a];
      await current; // the pulls already sent to b
      await b.restart();
      pool = [a, b];
      const servedAtRestart = served;
      for (let i = 0; i < 100 && served < servedAtRestart + 6; i++) await sleep(100);
      assert.ok(served >= servedAtRestart + 6, `pulls served after the restart: ${served - servedAtRestart}`);
    } finally {
      // Also when an assertion above failed: the traffic loop must end for the test to.
      running = false;
    }
    await traffic;
    assert.deepEqual(failures, [], 'no cached pull failed during the outage');

    await redis.start();
    // Both replicas leave the degraded mode by themselves...
    for (const w of [a, b]) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const r = JSON.parse((await request(`${w.url}/readyz`)).body.toString('utf8')) as { degraded?: boolean; checks: { redis?: string } };
        if (r.degraded === undefined && r.checks.redis === 'ok') break;
        assert.ok(Date.now() < deadline, `still degraded after Redis came back: ${JSON.stringify(r)}`);
        await sleep(200);
      }
    }
    // ...and a replica that knows nothing yet finds everything pushed before the outage.
    c = await startWharf({ config, dataDir: shared.path });
    await pullImage(c, 'team/app', '1', local);
    await pullImage(c, 'acme/tool', '1', mirrored);
  });
});
