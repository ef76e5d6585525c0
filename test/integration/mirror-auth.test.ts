/**
 * Upstream credentials and egress: token refresh across expiry, Basic credentials, where a blob
 * redirect may take wharf (and with which headers), and names that must never open a connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import {
  assertError,
  blobPath,
  getBlob,
  getManifest,
  getTags,
  MIRROR_USER,
  pullAndVerify,
  repoPath,
  seen,
  show,
  sleep,
  startBasicUpstream,
  startFakeCdn,
  startGhcrUpstream,
  startHubUpstream,
  startMirror,
  startTrap,
  type FakeCdn,
  type MirrorUpstream,
  type Trap,
} from '../helpers/mirror.js';
import { makeImage, sha256 } from '../helpers/oci-image.js';
import { errorCodes, rawRequest, type WharfProcess } from '../helpers/wharf.js';

let hub: MirrorUpstream;
let short: MirrorUpstream;
let basic: MirrorUpstream;
/** a second way into the Basic registry, configured in wharf without credentials */
let bare: FaultProxy;
let cdn: FakeCdn;
let trap: Trap;
let w: WharfProcess;

before(async () => {
  [hub, short, basic, cdn, trap] = await Promise.all([
    startHubUpstream(),
    startGhcrUpstream({ name: 'short', alias: 'short.test', expiresIn: 2, tagFreshness: '1s' }),
    startBasicUpstream(),
    startFakeCdn(),
    startTrap(),
  ]);
  bare = await startFaultProxy(basic.registry.url);
  w = await startMirror([
    hub.config({ redirectHosts: [cdn.host] }),
    short.config(),
    basic.config(),
    { name: 'nocreds', url: bare.url, aliases: ['nocreds.test'] },
  ]);
});
after(async () => {
  await w?.stop();
  await bare?.stop();
  await Promise.all([hub?.stop(), short?.stop(), basic?.stop(), cdn?.stop(), trap?.stop()]);
});

describe('upstream credentials', () => {
  it('a 2 s token: requests across its expiry keep working and new tokens are issued', async () => {
    const a = makeImage({ layers: 1 });
    const b = makeImage({ layers: 1 });
    await short.push('acme/expiring', 'a', a);
    await short.push('acme/expiring', 'b', b);
    await pullAndVerify(w, 'acme/expiring', 'a', a, { ns: 'short.test' });
    const issuedBefore = short.tokens!.issued;
    await sleep(2500); // the token and the tag's freshness both run out
    const mark = short.proxy.requests.length;
    await pullAndVerify(w, 'short.test/acme/expiring', 'a', a); // revalidation HEAD with a new token
    await pullAndVerify(w, 'short.test/acme/expiring', 'b', b); // cold content with a new token
    assert.ok(short.tokens!.issued > issuedBefore, `tokens issued: ${issuedBefore} → ${short.tokens!.issued}`);
    // an expired token is never presented: the upstream refused nothing after the expiry
    const refused = short.proxy.requests.slice(mark).filter((r) => r.status === 401);
    assert.deepEqual(refused.map((r) => `${r.method} ${r.path} auth=${r.headers?.authorization ? 'yes' : 'no'}`), [], seen(short.proxy, { path: repoPath('acme/expiring') }));
  });

  it('Basic credentials are sent to the upstream that needs them; without them its refusal is UNAUTHORIZED', async () => {
    const x = makeImage({ layers: 1 });
    await basic.push('acme/private', '1', x);
    await pullAndVerify(w, 'basic.test/acme/private', '1', x);
    const authed = basic.proxy.requests.filter((r) => repoPath('acme/private').test(r.path) && r.status === 200);
    assert.ok(authed.length > 0 && authed.every((r) => /^basic /i.test(r.headers?.authorization ?? '')), 'successful upstream requests carried Basic credentials');
    const expected = `Basic ${Buffer.from(`${MIRROR_USER.username}:${MIRROR_USER.password}`).toString('base64')}`;
    assert.equal(authed[0]!.headers?.authorization, expected);

    assertError(await getManifest(w, 'nocreds.test/acme/private', '1'), 401, 'UNAUTHORIZED', 'upstream refuses an anonymous mirror');
    assert.ok(bare.count({ path: repoPath('acme/private') }) >= 1);
  });
});

describe('blob redirects', () => {
  it('a redirect to an allowed host is followed, and carries no Authorization there', async () => {
    const x = makeImage({ layers: 1, layerSize: 50_000 });
    await hub.push('acme/cdn', '1', x);
    const layer = x.layers[0]!;
    cdn.serve(layer.digest, layer.bytes);
    hub.proxy.inject({
      match: { method: 'GET', path: blobPath('acme/cdn', layer.digest) },
      times: 1,
      action: { kind: 'status', status: 307, headers: { location: `${cdn.url}/blobs/${layer.digest}?sig=abc` } },
    });
    const res = await getBlob(w, 'acme/cdn', layer.digest);
    assert.equal(res.status, 200, show(res));
    assert.equal(sha256(res.body), layer.digest);
    assert.equal(cdn.requests.length, 1, 'the CDN was asked once');
    assert.equal(cdn.requests[0]!.headers.authorization, undefined, `headers sent to the CDN: ${JSON.stringify(cdn.requests[0]!.headers)}`);
    // the contrast: the upstream itself was asked with wharf's token
    const upstreamGet = hub.proxy.requests.find((r) => r.method === 'GET' && r.path === blobPath('acme/cdn', layer.digest) && r.status === 307);
    assert.match(upstreamGet?.headers?.authorization ?? '', /^Bearer /, 'the upstream request carried the token');
  });

  it('a redirect to a host not in redirectHosts opens no connection and is not served', async () => {
    const x = makeImage({ layers: 1 });
    await hub.push('acme/evil-redirect', '1', x);
    const layer = x.layers[0]!;
    hub.proxy.inject({
      match: { path: blobPath('acme/evil-redirect', layer.digest) },
      action: { kind: 'status', status: 307, headers: { location: `http://${trap.host}/blobs/${layer.digest}` } },
    });
    try {
      const res = await getBlob(w, 'acme/evil-redirect', layer.digest);
      assert.notEqual(res.status, 200, show(res));
      assert.ok(res.status >= 400, show(res));
      const head = await getBlob(w, 'acme/evil-redirect', layer.digest, { method: 'HEAD' });
      assert.notEqual(head.status, 200, show(head));
    } finally {
      hub.proxy.clearFaults();
    }
    await sleep(100);
    assert.equal(trap.connections, 0, 'the disallowed host was never contacted');
  });
});

describe('names that match no configured upstream', () => {
  it('an unknown ?ns= or host prefix is NAME_UNKNOWN / NAME_INVALID and opens no connection', async () => {
    const mark = hub.proxy.requests.length;
    for (const ns of [trap.host, `localhost:${trap.port}`]) {
      const m = await getManifest(w, 'x', 'y', { ns });
      assertError(m, 404, 'NAME_UNKNOWN', `manifest ?ns=${ns}`);
      assertError(await getBlob(w, 'x', sha256('x'), { ns }), 404, 'NAME_UNKNOWN', `blob ?ns=${ns}`);
      assertError(await getTags(w, 'x', { ns }), 404, 'NAME_UNKNOWN', `tags ?ns=${ns}`);
    }
    for (const path of [`/v2/${trap.host}/x/manifests/y`, `/v2/localhost:${trap.port}/x/manifests/y`, `/v2/${trap.host}/x/blobs/${sha256('x')}`]) {
      const res = await rawRequest(w, 'GET', path);
      const codes = errorCodes(res);
      const ok = (res.status === 400 && codes.includes('NAME_INVALID')) || (res.status === 404 && codes.includes('NAME_UNKNOWN'));
      assert.ok(ok, `${path}: 400 NAME_INVALID or 404 NAME_UNKNOWN expected: ${show(res)}`);
    }
    await sleep(100);
    assert.equal(trap.connections, 0, 'the unconfigured host was never contacted');
    assert.deepEqual(hub.proxy.requests.slice(mark).map((r) => `${r.method} ${r.path}`), [], 'nor did the default upstream get these names');
  });
});
