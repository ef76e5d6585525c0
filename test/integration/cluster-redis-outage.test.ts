/**
 * Redis stopped and restarted under a running wharf (its own redis-server, without persistence): cached
 * content keeps being served, everything else fails fast with 503, and wharf recovers on its own.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { manifestAccept, request, type HttpResponse } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { sleep, startRedisServer, testPrefix, type RedisServer } from './cluster-helpers.js';

let registry: RegistryProcess;
let proxy: FaultProxy;
let redis: RedisServer;
let w: WharfProcess;

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  redis = await startRedisServer();
  w = await startWharf({
    config: {
      upstreams: [{ name: 'up', url: proxy.url, default: true, aliases: ['up.test'], tagFreshness: '1s' }],
      redis: { url: redis.url, keyPrefix: testPrefix() },
    },
  });
});

after(async () => {
  await w?.stop();
  await redis?.stop(); // private server: its keys go with it
  await proxy?.stop();
  await registry?.stop();
});

const getBlob = (repo: string, digest: string): Promise<HttpResponse> => request(`${w.url}/v2/${repo}/blobs/${digest}`);
const getManifest = (repo: string, ref: string): Promise<HttpResponse> => request(`${w.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: manifestAccept } });

async function pullByDigest(repo: string, img: TestImage): Promise<void> {
  const m = await getManifest(repo, img.manifestDigest);
  assert.equal(m.status, 200, `manifest by digest: ${describeResponse(m)}`);
  assert.equal(sha256(m.body), img.manifestDigest);
  for (const b of [img.config, ...img.layers]) {
    const res = await getBlob(repo, b.digest);
    assert.equal(res.status, 200, `blob ${b.digest}: ${describeResponse(res)}`);
    assert.equal(sha256(res.body), b.digest);
  }
}

describe('Redis outage', () => {
  it('cached by-digest pulls go on, uncached requests fail fast with 503, and wharf recovers without a restart', async () => {
    const cached = makeImage({ layers: 2, layerSize: 100_000 });
    const uncached = makeImage({ layers: 1 });
    const later = makeImage({ layers: 1 });
    await pushImage(registry.url, 'team/cached', 'v1', cached);
    await pushImage(registry.url, 'team/uncached', 'v1', uncached);
    await pushImage(registry.url, 'team/later', 'v1', later);

    assert.equal((await getManifest('team/cached', 'v1')).status, 200);
    await pullByDigest('team/cached', cached);

    // Traffic keeps running while Redis goes away.
    let running = true;
    const failures: string[] = [];
    let served = 0;
    const traffic = (async () => {
      while (running) {
        await pullByDigest('team/cached', cached).then(
          () => served++,
          (e: Error) => failures.push(e.message),
        );
      }
    })();
    await sleep(300);
    await redis.stop();
    await sleep(1500);

    const statusBody = await request(`${w.url}/readyz`);
    assert.equal(statusBody.status, 200, `readyz does not fail on Redis: ${describeResponse(statusBody)}`);
    const outage = JSON.parse(statusBody.body.toString('utf8')) as { degraded?: boolean; checks: { redis?: string; metadata?: string } };
    const checks = outage.checks;
    assert.ok(checks.redis !== undefined && checks.redis !== 'ok', `readyz reports Redis: ${JSON.stringify(checks)}`);
    // ...and says the replica is degraded, as does a gauge.
    assert.equal(outage.degraded, true, JSON.stringify(outage));
    assert.match(checks.metadata ?? '', /^degraded since /);
    assert.match((await request(`${w.url}/metrics`)).body.toString('utf8'), /^wharf_metadata_degraded 1$/m);

    // Tags this replica knows keep being served (past their freshness: revalidated upstream, served stale).
    const tag = await getManifest('team/cached', 'v1');
    assert.equal(tag.status, 200, describeResponse(tag));
    assert.equal(sha256(tag.body), cached.manifestDigest);

    for (const [what, send] of [
      ['uncached blob', () => getBlob('team/uncached', uncached.layers[0]!.digest)],
      ['uncached manifest', () => getManifest('team/uncached', 'v1')],
      ['upload', () => request(`${w.url}/v2/team/push/blobs/uploads/`, { method: 'POST' })],
    ] as const) {
      const t0 = Date.now();
      const res = await send();
      const ms = Date.now() - t0;
      assert.equal(res.status, 503, `${what}: ${describeResponse(res)}`);
      assert.ok(errorCodes(res).includes('UNAVAILABLE'), `${what}: ${describeResponse(res)}`);
      assert.ok(ms < 1000, `${what} answered in ${ms} ms`);
    }

    const servedDuringOutage = served;
    await sleep(500);
    assert.ok(served > servedDuringOutage, 'cached pulls kept being served during the outage');
    running = false;
    await traffic;
    assert.deepEqual(failures, [], 'no cached pull failed');

    // Redis comes back (empty: no persistence); wharf reconnects by itself.
    await redis.start();
    const deadline = Date.now() + 15_000;
    for (;;) {
      const m = await getManifest('team/later', 'v1');
      if (m.status === 200) break;
      assert.ok(Date.now() < deadline, `no recovery after Redis restart: ${describeResponse(m)}`);
      await sleep(200);
    }
    await pullByDigest('team/later', later);
    await pullByDigest('team/uncached', uncached);
    const ready = JSON.parse((await request(`${w.url}/readyz`)).body.toString('utf8')) as { degraded?: boolean; checks: { redis?: string; metadata?: string } };
    assert.equal(ready.checks.redis, 'ok');
    assert.equal(ready.checks.metadata, 'ok');
    assert.equal(ready.degraded, undefined);
    assert.match((await request(`${w.url}/metrics`)).body.toString('utf8'), /^wharf_metadata_degraded 0$/m);
  });
});
