import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it, after, before } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { fetchBlob, fetchManifest, request } from '../helpers/http.js';
import {
  makeImage,
  makeIndex,
  pushImage,
  readOciLayout,
  sha256,
  writeOciLayout,
} from '../helpers/oci-image.js';
import { startBasicRegistry, startRegistry, startTokenRegistry, type RegistryProcess, type TokenRegistry } from '../helpers/registry.js';
import { copy, inspectRaw } from '../helpers/skopeo.js';
import { tempDir } from '../helpers/tmp.js';

const alice = { username: 'alice', password: 'wonderland' };

describe('token registry (docker.io-like)', () => {
  let hub: TokenRegistry;
  before(async () => {
    hub = await startTokenRegistry({ users: { alice: alice.password } });
  });
  after(() => hub.stop());

  it('denies anonymous push, accepts push with credentials, serves anonymous pull', async () => {
    const img = makeImage();
    await assert.rejects(pushImage(hub.registry.url, 'library/demo', 'v1', img), /HTTP 401/);
    await assert.rejects(
      pushImage(hub.registry.url, 'library/demo', 'v1', img, { username: 'alice', password: 'wrong' }),
      /HTTP 401/,
    );

    const before = hub.tokens.issued;
    await pushImage(hub.registry.url, 'library/demo', 'v1', img, alice);
    assert.equal(hub.tokens.issued, before + 1, 'one token serves the whole push');

    const m = await fetchManifest(hub.registry.url, 'library/demo', 'v1');
    assert.equal(m.status, 200);
    assert.deepEqual(m.body, img.manifest);
    assert.equal(m.headers['docker-content-digest'], img.manifestDigest);
    const layer = img.layers[0]!;
    const b = await fetchBlob(hub.registry.url, 'library/demo', layer.digest);
    assert.equal(b.status, 200);
    assert.equal(sha256(b.body), layer.digest);

    const anon = hub.tokens.requests.filter((r) => r.user === undefined && r.status === 200);
    assert.ok(anon.some((r) => r.scope === 'repository:library/demo:pull'));
  });

  it('issues JWTs shaped like auth.docker.io, granting pull only to anonymous callers', async () => {
    const ask = async (auth?: string): Promise<{ status: number; token?: string }> => {
      const u = `${hub.tokens.url}?service=registry.test&scope=repository:library/demo:pull,push`;
      const res = await request(u, { headers: auth ? { authorization: auth } : {} });
      if (res.status !== 200) return { status: res.status };
      const j = JSON.parse(res.body.toString()) as { token: string; access_token: string; expires_in: number };
      assert.equal(j.token, j.access_token);
      assert.equal(j.expires_in, 300);
      return { status: 200, token: j.token };
    };
    const anon = await ask();
    const claims = decodeJwt(anon.token!);
    assert.equal(claims.aud, 'registry.test');
    assert.equal(claims.iss, 'wharf-test-token-issuer');
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'library/demo', actions: ['pull'] }]);
    assert.ok(Array.isArray(decodeProtectedHeader(anon.token!).x5c));

    const basic = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;
    const authed = decodeJwt((await ask(basic)).token!);
    assert.equal(authed.sub, 'alice');
    assert.deepEqual(authed.access, [{ type: 'repository', name: 'library/demo', actions: ['pull', 'push'] }]);
    assert.equal((await ask(`Basic ${Buffer.from('alice:nope').toString('base64')}`)).status, 401);
  });

  it('restarts on the same port with the same data', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(hub.registry.url, 'team/keep', 'v1', img, alice);
    await hub.registry.restart();
    const m = await fetchManifest(hub.registry.url, 'team/keep', 'v1');
    assert.equal(m.status, 200);
    assert.deepEqual(m.body, img.manifest);
  });
});

describe('token server options', () => {
  it('anonymous none → 401 from the realm; null expiresIn omits the field; tokenField picks one', async () => {
    const hub = await startTokenRegistry({ anonymous: 'none', expiresIn: null, tokenField: 'access_token', users: { alice: alice.password } });
    try {
      const m = await fetchManifest(hub.registry.url, 'library/x', 'latest');
      assert.equal(m.status, 401);
      assert.equal(hub.tokens.requests.at(-1)?.status, 401);
      const res = await request(`${hub.tokens.url}?service=registry.test&scope=repository:library/x:pull`, {
        headers: { authorization: `Basic ${Buffer.from('alice:wonderland').toString('base64')}` },
      });
      const j = JSON.parse(res.body.toString()) as Record<string, unknown>;
      assert.equal(j.token, undefined);
      assert.equal(j.expires_in, undefined);
      assert.equal(typeof j.access_token, 'string');
      // with credentials the registry accepts the token (404 for a missing repo, not 401)
      const authed = await fetchManifest(hub.registry.url, 'library/x', 'latest', { auth: alice });
      assert.equal(authed.status, 404);
    } finally {
      await hub.stop();
    }
  });
});

describe('htpasswd registry', () => {
  let reg: RegistryProcess;
  before(async () => {
    reg = await startBasicRegistry({ alice: alice.password });
  });
  after(() => reg.stop());

  it('needs credentials for pulls', async () => {
    const img = makeImage({ format: 'docker' });
    await pushImage(reg.url, 'private/app', '1.0', img, alice);
    const anon = await fetchManifest(reg.url, 'private/app', '1.0');
    assert.equal(anon.status, 401);
    assert.match(anon.headers['www-authenticate'] ?? '', /^Basic /);
    const authed = await fetchManifest(reg.url, 'private/app', '1.0', { auth: alice });
    assert.equal(authed.status, 200);
    assert.equal(authed.headers['content-type'], 'application/vnd.docker.distribution.manifest.v2+json');
    assert.deepEqual(authed.body, img.manifest);
  });
});

describe('skopeo against the real registry', () => {
  let reg: RegistryProcess;
  before(async () => {
    reg = await startRegistry();
  });
  after(() => reg.stop());

  it('copies a two-platform OCI index in and out with digests intact', async (t) => {
    const src = await tempDir();
    const dst = await tempDir();
    t.after(() => Promise.all([src.cleanup(), dst.cleanup()]));
    const index = makeIndex(
      [
        makeImage({ platform: { os: 'linux', architecture: 'amd64' } }),
        makeImage({ platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
      ],
      'oci',
    );
    const ref = await writeOciLayout(src.path, 'v1', index);
    await copy(ref, `docker://${reg.host}/multi/app:v1`, { all: true });

    const served = await fetchManifest(reg.url, 'multi/app', 'v1');
    assert.equal(served.status, 200);
    assert.deepEqual(served.body, index.bytes);
    assert.deepEqual(await inspectRaw(`docker://${reg.host}/multi/app:v1`), index.bytes);

    await copy(`docker://${reg.host}/multi/app:v1`, `oci:${dst.path}:v1`, { all: true });
    const back = await readOciLayout(dst.path, 'v1');
    assert.equal(back.digest, index.digest);
    for (const img of index.images) {
      const child = await fetchManifest(reg.url, 'multi/app', img.manifestDigest);
      assert.equal(sha256(child.body), img.manifestDigest);
    }
  });
});

describe('fault proxy', () => {
  let reg: RegistryProcess;
  let proxy: FaultProxy;
  const img = makeImage({ layers: 1, layerSize: 256 * 1024 });
  const layer = img.layers[0]!;
  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.url);
    await pushImage(proxy.url, 'fp/app', 'v1', img);
  });
  after(async () => {
    await proxy.stop();
    await reg.stop();
  });

  it('is transparent and counts requests by method and path', async () => {
    // the push went through the proxy, uploads included (the registry's Location points back at it)
    assert.equal(proxy.count({ method: 'PUT', path: '/v2/fp/app/manifests/v1' }), 1);
    assert.equal(proxy.count({ method: 'PUT', path: /^\/v2\/fp\/app\/blobs\/uploads\// }), 2);
    assert.ok(proxy.requests.every((r) => !r.path.includes('?')));
    proxy.reset();
    const m = await fetchManifest(proxy.url, 'fp/app', 'v1');
    assert.equal(m.status, 200);
    assert.deepEqual(m.body, img.manifest);
    const ranged = await fetchBlob(proxy.url, 'fp/app', layer.digest, { headers: { range: 'bytes=10-19' } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(ranged.body, layer.bytes.subarray(10, 20));
    assert.equal(proxy.count(), 2);
    assert.equal(proxy.count({ path: `/v2/fp/app/blobs/${layer.digest}` }), 1);
    assert.deepEqual(proxy.requests.map((r) => r.status), [200, 206]);
  });

  it('injects a 429 with Retry-After once, then passes through', async () => {
    proxy.inject({
      match: { method: 'GET', path: /\/manifests\// },
      times: 1,
      action: { kind: 'status', status: 429, headers: { 'retry-after': '7' }, body: '{"errors":[{"code":"TOOMANYREQUESTS"}]}' },
    });
    const limited = await fetchManifest(proxy.url, 'fp/app', 'v1');
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['retry-after'], '7');
    const ok = await fetchManifest(proxy.url, 'fp/app', 'v1');
    assert.equal(ok.status, 200);
  });

  it('truncates a blob body after N bytes', async () => {
    proxy.inject({ match: { path: `/v2/fp/app/blobs/${layer.digest}` }, times: 1, action: { kind: 'truncate', afterBytes: 1000 } });
    await assert.rejects(fetchBlob(proxy.url, 'fp/app', layer.digest), /aborted|incomplete|socket hang up|ECONNRESET/);
    const whole = await fetchBlob(proxy.url, 'fp/app', layer.digest);
    assert.equal(sha256(whole.body), layer.digest);
  });

  it('corrupts bytes but keeps length and headers', async () => {
    proxy.inject({ match: { path: /\/blobs\// }, times: 1, action: { kind: 'corrupt' } });
    const bad = await fetchBlob(proxy.url, 'fp/app', layer.digest);
    assert.equal(bad.status, 200);
    assert.equal(bad.body.length, layer.bytes.length);
    assert.equal(bad.headers['docker-content-digest'], layer.digest);
    assert.notEqual(createHash('sha256').update(bad.body).digest('hex'), layer.digest.slice(7));
  });

  it('adds headers to the real response', async () => {
    proxy.inject({ match: { method: 'HEAD' }, action: { kind: 'headers', headers: { 'ratelimit-remaining': '99;w=21600' } } });
    const head = await fetchManifest(proxy.url, 'fp/app', 'v1', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['ratelimit-remaining'], '99;w=21600');
    assert.equal(head.headers['docker-content-digest'], img.manifestDigest);
    proxy.clearFaults();
    const plain = await fetchManifest(proxy.url, 'fp/app', 'v1', { method: 'HEAD' });
    assert.equal(plain.headers['ratelimit-remaining'], undefined);
  });

  it('delays and drops', async () => {
    proxy.inject({ match: { path: '/v2/' }, times: 1, action: { kind: 'delay', ms: 150 } });
    const t0 = Date.now();
    assert.equal((await request(`${proxy.url}/v2/`)).status, 200);
    assert.ok(Date.now() - t0 >= 140);
    proxy.inject({ match: { path: '/v2/' }, times: 1, action: { kind: 'drop' } });
    await assert.rejects(request(`${proxy.url}/v2/`), /socket hang up|ECONNRESET/);
    assert.equal((await request(`${proxy.url}/v2/`)).status, 200);
  });
});
