/**
 * Issue 17 item 11, a replica (re)started while Redis is down (a real redis-server on its own port, stopped
 * and started by the test): it starts at once in degraded mode instead of exiting, serves the tags and links
 * it knew from its local snapshot, refuses writes with 503 and the reason, refuses token logins while the
 * shared signing key is out of reach, and joins the cluster by itself when Redis answers again.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicHeader, manifestAccept, request, type Credentials } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { htpasswdFile, startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { pullImage, sleep, startRedisServer, testPrefix, type RedisServer } from './cluster-helpers.js';

const ALICE: Credentials = { username: 'alice', password: 'alice-pw' };

describe('a replica started while Redis is down', () => {
  let registry: RegistryProcess;
  let redis: RedisServer;
  let shared: TempDir;
  let aof: TempDir;
  let a: WharfProcess | undefined;
  let b: WharfProcess | undefined;
  let c: WharfProcess | undefined;
  let config: Record<string, unknown>;
  const mirrored = makeImage({ layers: 2, layerSize: 30_000 });
  const local = makeImage({ layers: 1 });
  const later = makeImage({ layers: 1 });

  before(async () => {
    registry = await startRegistry();
    [shared, aof] = await Promise.all([tempDir('wharf-startdeg-shared-'), tempDir('wharf-startdeg-aof-')]);
    redis = await startRedisServer({ aofDir: aof.path });
    config = {
      upstreams: [{ name: 'up', url: registry.url, default: true, tagFreshness: '1h' }],
      redis: { url: redis.url, keyPrefix: testPrefix(), outageGrace: '10m', snapshotInterval: '1s' },
    };
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
    await redis?.stop();
    await registry?.stop();
    await shared?.cleanup();
    await aof?.cleanup();
  });


  async function readyz(w: WharfProcess): Promise<{ ready: boolean; degraded?: boolean; checks: Record<string, unknown> }> {
    const res = await request(`${w.url}/readyz`);
    return JSON.parse(res.body.toString('utf8')) as { ready: boolean; degraded?: boolean; checks: Record<string, unknown> };
  }

  async function degradedGauge(w: WharfProcess): Promise<number> {
    const text = (await request(`${w.url}/metrics`)).body.toString('utf8');
    const m = /^wharf_metadata_degraded (\d+)$/m.exec(text);
    assert.ok(m, 'wharf_metadata_degraded exported');
    return Number(m[1]);
  }

  async function refusesPush(w: WharfProcess): Promise<void> {
    const push = await request(`${w.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(push.status, 503, describeResponse(push));
    assert.ok(errorCodes(push).includes('UNAVAILABLE'));
    assert.match(push.body.toString('utf8'), /writes are refused/);
  }

  it('starts degraded, serves what it served before from its snapshot, refuses writes, and leaves degraded mode by itself', async () => {
    await pushImage(registry.url, 'acme/tool', '1', mirrored);
    a = await startWharf({ config, dataDir: shared.path });
    await pushImage(a.url, 'team/app', '1', local);
    await pullImage(a, 'acme/tool', '1', mirrored);
    await pullImage(a, 'team/app', '1', local);

    await redis.stop();
    // Restarted during the outage (an update, a crash loop, a node drain): it must come back and serve.
    await a.restart();
    const r = await readyz(a);
    assert.equal(r.degraded, true, JSON.stringify(r));
    assert.match(String(r.checks.metadata), /degraded since/);
    assert.equal(await degradedGauge(a), 1);
    await pullImage(a, 'acme/tool', '1', mirrored);
    await pullImage(a, 'acme/tool', mirrored.manifestDigest, mirrored);
    await pullImage(a, 'team/app', '1', local);
    await refusesPush(a);

    // A replica that never ran before starts too (nothing to serve yet, but up and saying why).
    b = await startWharf({ config, dataDir: shared.path });
    assert.equal((await readyz(b)).degraded, true);
    await refusesPush(b);
    const unknown = await request(`${b.url}/v2/team/app/manifests/1`, { headers: { accept: manifestAccept } });
    assert.equal(unknown.status, 503, `a tag it never knew: ${describeResponse(unknown)}`);

    // Each replica keeps its own snapshot on the shared data dir.
    await a.restart();
    await pullImage(a, 'team/app', '1', local);
    for (let i = 0; ; i++) {
      const files = (await readdir(join(shared.path, 'meta-snapshots'))).filter((f) => f.endsWith('.json'));
      if (files.length === 2) break;
      assert.ok(i < 100, `one snapshot per replica: ${files.join(', ')}`);
      await sleep(100);
    }

    await redis.start();
    // Both leave the degraded mode without a request asking them to (the gauge is read at scrape time).
    for (const w of [a, b]) {
      const deadline = Date.now() + 30_000;
      while ((await degradedGauge(w)) !== 0) {
        assert.ok(Date.now() < deadline, `still degraded after Redis came back: ${w.logs().slice(-2000)}`);
        await sleep(200);
      }
      assert.equal((await readyz(w)).degraded, undefined);
    }
    await pushImage(b.url, 'team/app', '2', later);
    await pullImage(a, 'team/app', '2', later);
    await pullImage(b, 'team/app', '1', local);
  });

  it('with token auth, refuses logins until the signing key shared through Redis can be read', async () => {
    const htpasswd = join(shared.path, 'htpasswd');
    await htpasswdFile(htpasswd, { alice: ALICE.password });
    const authConfig = { ...config, auth: { htpasswd, rules: [{ repositories: ['team/**'], users: ['alice'], actions: ['pull', 'push'] }] } };
    await redis.stop();
    c = await startWharf({ config: authConfig, dataDir: shared.path });
    const login = await request(`${c.url}/token?service=wharf&scope=repository:team/app:pull`, { headers: { authorization: basicHeader(ALICE) } });
    assert.equal(login.status, 503, `no token without the shared key: ${describeResponse(login)}`);
    assert.match(login.body.toString('utf8'), /signing key/);
    const forged = await request(`${c.url}/v2/`, { headers: { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x' } });
    assert.ok(forged.status === 401 || forged.status === 503, `a bearer token is not accepted: ${describeResponse(forged)}`);

    await redis.start();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const t = await request(`${c.url}/token?service=wharf&scope=repository:team/app:pull`, { headers: { authorization: basicHeader(ALICE) } });
      if (t.status === 200) {
        const token = (JSON.parse(t.body.toString('utf8')) as { token: string }).token;
        const m = await request(`${c.url}/v2/team/app/manifests/1`, { headers: { accept: manifestAccept, authorization: `Bearer ${token}` } });
        assert.equal(m.status, 200, describeResponse(m));
        assert.equal(sha256(m.body), local.manifestDigest);
        break;
      }
      assert.ok(Date.now() < deadline, `no token after Redis came back: ${describeResponse(t)}`);
      await sleep(200);
    }
  });

  it('a Redis that refuses the password is a configuration error: the start fails with one clear line', async () => {
    const locked = await startRedisServer({ requirePass: 'the-right-one' });
    try {
      const bad = { ...config, redis: { url: locked.url, keyPrefix: testPrefix(), password: 'a-wrong-one' } };
      const err = await startWharf({ config: bad, startTimeoutMs: 30_000 }).then(
        async (w) => {
          await w.stop();
          return undefined;
        },
        (e: Error) => e,
      );
      assert.ok(err, 'wharf started with a wrong Redis password');
      assert.match(err.message, /process exited/);
      assert.match(err.message, /wharf: metadata store: cannot reach redis at redis:\/\/127\.0\.0\.1:\d+\/? \(WRONGPASS/);
      assert.doesNotMatch(err.message, /a-wrong-one/, 'the password is not logged');
    } finally {
      await locked.stop();
    }
  });
});
