/**
 * External token mode (Distribution's `auth.token` with rootcertbundle/jwks, as behind Portus or
 * docker_auth): a token server of its own (test/helpers/token-server.ts, key and certificate made by
 * openssl) issues the tokens; wharf only verifies them. skopeo's credentials go to the token server, never
 * to wharf; pulls and pushes of local and mirrored repositories work exactly as far as the token grants;
 * forged, expired and misdirected tokens are 401.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { parseChallenge, request, RegistrySession, type HttpResponse } from '../helpers/http.js';
import { startHubUpstream, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage, pushImage, writeOciLayout, type TestImage } from '../helpers/oci-image.js';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { copy, inspectRaw } from '../helpers/skopeo.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startTokenServer, type TokenServer, type TokenServerOptions } from '../helpers/token-server.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';

const SERVICE = 'registry.example:5000';
const ISSUER = 'portus.example';
const USERS = { alice: 'alice-secret-pw', bob: 'bob-secret-pw' };

/** The token service's access policy, by `type:name` as the client asked for it. */
const POLICY: Record<string, Record<string, string[]>> = {
  alice: { 'repository:team/app': ['pull', 'push', 'delete'], 'repository:alpine': ['pull'], 'registry:catalog': ['*'] },
  bob: { 'repository:team/app': ['pull'] },
};

function tokenServerOptions(extra: Partial<TokenServerOptions> = {}): TokenServerOptions {
  return {
    service: SERVICE,
    issuer: ISSUER,
    users: USERS,
    anonymous: 'none',
    grant: (user, type, name, actions) => {
      const allowed = (user && POLICY[user]?.[`${type}:${name}`]) || [];
      return actions.filter((a) => allowed.includes(a) || allowed.includes('*'));
    },
    ...extra,
  };
}

function externalAuth(ts: TokenServer, keys: Record<string, unknown> = { rootcertbundle: ts.certPath }): Record<string, unknown> {
  return { token: { realm: ts.url, service: SERVICE, issuer: ISSUER, ...keys } };
}

const now = (): number => Math.floor(Date.now() / 1000);
function claims(access: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: ISSUER, aud: SERVICE, sub: 'alice', iat: now(), nbf: now() - 1, exp: now() + 300, access, ...extra };
}
const PULL_APP = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];
const b64 = (x: unknown): string => Buffer.from(JSON.stringify(x)).toString('base64url');

function bearer(url: string, token: string, method = 'GET'): Promise<HttpResponse> {
  return request(url, { method, headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
}

function assertChallenge(res: HttpResponse, ts: TokenServer, params: Record<string, string>, what: string): void {
  assert.equal(res.status, 401, `${what}: ${describeResponse(res)}`);
  assert.deepEqual(errorCodes(res), ['UNAUTHORIZED'], what);
  assert.deepEqual(parseChallenge(res.headers['www-authenticate']), { scheme: 'bearer', params: { realm: ts.url, service: SERVICE, ...params } }, what);
}

describe('external token service: x5c flavour (rootcertbundle), skopeo as the client', () => {
  let ts: TokenServer;
  let other: TokenServer;
  let hub: MirrorUpstream;
  let w: WharfProcess;
  /** a second replica (shared Redis and data directory) */
  let w2: WharfProcess;
  const keyPrefix = testPrefix();
  let front: FaultProxy;
  let dir: TempDir;
  let app: TestImage;
  let alpine: TestImage;

  before(async () => {
    dir = await tempDir('wharf-extauth-');
    ts = await startTokenServer(tokenServerOptions());
    other = await startTokenServer(tokenServerOptions({ keyRef: 'kid' }));
    hub = await startHubUpstream();
    alpine = makeImage();
    await hub.push('library/alpine', '1', alpine);
    const config = {
      upstreams: [hub.config()],
      redis: { url: REDIS_URL, keyPrefix },
      push: { immutableTags: ['team/**:v*'] },
      admin: { username: 'ops', password: 'ops-pw' },
      auth: externalAuth(ts),
    };
    const dataDir = join(dir.path, 'data');
    [w, w2] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
    front = await startFaultProxy(w.url); // records every request header skopeo sends to wharf
    app = makeImage();
  });
  after(async () => {
    await front?.stop();
    await Promise.all([w?.stop(), w2?.stop()]);
    await hub?.stop();
    await other?.stop();
    await ts?.stop();
    await dir?.cleanup();
    await deleteKeys(REDIS_URL, keyPrefix);
  });

  it('challenges with the external realm; credentials other than its token are refused; the catalog needs registry:catalog:*', async () => {
    assertChallenge(await request(`${w.url}/v2/`), ts, {}, 'GET /v2/ without a token');
    const basic = await request(`${w.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from('alice:alice-secret-pw').toString('base64')}` } });
    assertChallenge(basic, ts, {}, 'Basic credentials sent to wharf');
    assertChallenge(await request(`${w.url}/v2/team/app/manifests/1`), ts, { scope: 'repository:team/app:pull' }, 'anonymous pull');
    assert.equal((await request(`${w.url}/token`)).status, 404, 'no built-in token endpoint in this mode');
    const admin = await request(`${w.url}/_wharf/admin/stats`, { headers: { authorization: `Basic ${Buffer.from('ops:ops-pw').toString('base64')}` } });
    assert.equal(admin.status, 200, `the admin API keeps its own credentials: ${describeResponse(admin)}`);
    assert.equal((await request(`${w.url}/metrics`)).status, 200, '/metrics as configured (open on the main port)');

    const pullOnly = await ts.sign(claims(PULL_APP));
    assert.equal((await bearer(`${w.url}/v2/`, pullOnly)).status, 200, 'any valid token passes the ping');
    assertChallenge(await bearer(`${w.url}/v2/_catalog`, pullOnly), ts, { scope: 'registry:catalog:*', error: 'insufficient_scope' }, 'catalog without its scope');
    const cat = new RegistrySession({ username: 'alice', password: USERS.alice });
    const listed = await cat.request(`${w.url}/v2/_catalog`);
    assert.equal(listed.status, 200, describeResponse(listed));
  });

  it('skopeo pushes and pulls through the token service as far as granted; wharf never sees a password', async () => {
    const src = await tempDir('wharf-extauth-src-');
    try {
      const ref = await writeOciLayout(src.path, '1', app);
      await copy(ref, `docker://${front.host}/team/app:1`, { destCreds: `alice:${USERS.alice}` });
      assert.deepEqual(await inspectRaw(`docker://${front.host}/team/app:1`, { creds: `bob:${USERS.bob}` }), app.manifest, 'bob may pull');
      await assert.rejects(copy(ref, `docker://${front.host}/team/app:2`, { destCreds: `bob:${USERS.bob}` }), 'bob may not push');
      await assert.rejects(inspectRaw(`docker://${front.host}/team/other:1`, { creds: `alice:${USERS.alice}` }), 'nothing granted on team/other');
    } finally {
      await src.cleanup();
    }
    assert.ok(ts.requests.some((r) => r.user === 'alice' && r.scope?.includes('repository:team/app:pull,push')), 'alice asked the token service for push');
    const onOther = await bearer(`${w2.url}/v2/team/app/manifests/1`, await ts.sign(claims(PULL_APP)));
    assert.equal(onOther.status, 200, `the other replica verifies the same token on its own: ${describeResponse(onOther)}`);
    const auths = front.requests.map((r) => r.headers?.authorization ?? '');
    assert.ok(auths.some((a) => a.startsWith('Bearer ')), 'skopeo sent tokens to wharf');
    assert.ok(auths.every((a) => !/^basic/i.test(a)), 'no Basic credentials ever reached wharf');
    for (const r of front.requests) {
      const all = JSON.stringify(r.headers ?? {});
      assert.ok(!all.includes(USERS.alice) && !all.includes(USERS.bob), `no password in a request to wharf (${r.method} ${r.path})`);
    }
  });

  it('a mirrored repository is pulled as far as granted; a grant names it by any of its names', async () => {
    assert.deepEqual(await inspectRaw(`docker://${front.host}/alpine:1`, { creds: `alice:${USERS.alice}` }), alpine.manifest, 'alice may pull alpine');
    await assert.rejects(inspectRaw(`docker://${front.host}/alpine:1`, { creds: `bob:${USERS.bob}` }), 'bob may not');
    const bobToken = await ts.sign(claims(PULL_APP, { sub: 'bob' }));
    assertChallenge(
      await bearer(`${w.url}/v2/alpine/manifests/1`, bobToken),
      ts,
      { scope: 'repository:library/alpine:pull', error: 'insufficient_scope' },
      'the challenge names the canonical repository',
    );
    const canonical = await ts.sign(claims([{ type: 'repository', name: 'library/alpine', actions: ['pull'] }]));
    for (const name of ['alpine', 'library/alpine', 'docker.io/library/alpine']) {
      const res = await bearer(`${w.url}/v2/${name}/manifests/1`, canonical);
      assert.equal(res.status, 200, `${name} with a grant on library/alpine: ${describeResponse(res)}`);
    }
    const push = await bearer(`${w.url}/v2/alpine/blobs/uploads/`, canonical, 'POST');
    assertChallenge(push, ts, { scope: 'repository:library/alpine:pull,push', error: 'insufficient_scope' }, 'push with a pull grant');
  });

  it('push.immutableTags holds in this mode too, on either replica', async () => {
    const src = await tempDir('wharf-extauth-imm-');
    try {
      await copy(await writeOciLayout(src.path, '1', app), `docker://${w.host}/team/app:v1`, { destCreds: `alice:${USERS.alice}` });
      await assert.rejects(copy(await writeOciLayout(src.path, '2', alpine), `docker://${w2.host}/team/app:v1`, { destCreds: `alice:${USERS.alice}` }), /immutable/);
    } finally {
      await src.cleanup();
    }
    const all = await ts.sign(claims([{ type: 'repository', name: 'team/app', actions: ['*'] }]));
    const del = await bearer(`${w2.url}/v2/team/app/manifests/v1`, all, 'DELETE');
    assert.equal(del.status, 403, describeResponse(del));
    assert.deepEqual(errorCodes(del), ['DENIED']);
    assert.match(del.body.toString('utf8'), /team\/\*\*:v\*/);
  });

  it('refuses forged, misdirected and expired tokens with 401', async () => {
    const url = `${w.url}/v2/team/app/manifests/1`;
    const ok = await bearer(url, await ts.sign(claims(PULL_APP)));
    assert.equal(ok.status, 200, `the control token works: ${describeResponse(ok)}`);
    const arrayAud = await bearer(url, await ts.sign(claims(PULL_APP, { aud: ['other', SERVICE] })));
    assert.equal(arrayAud.status, 200, `aud as an array containing the service: ${describeResponse(arrayAud)}`);
    const skewed = await bearer(url, await ts.sign(claims(PULL_APP, { exp: now() - 30 })));
    assert.equal(skewed.status, 200, 'expired less than the 60 s leeway ago');

    const x5c = [new (await import('node:crypto')).X509Certificate(await readFile(ts.certPath)).raw.toString('base64')];
    const publicPem = createPublicKey(await readFile(ts.certPath)).export({ type: 'spki', format: 'pem' });
    const forged: Array<[string, string]> = [
      ['alg none', `${b64({ alg: 'none', typ: 'JWT', x5c })}.${b64(claims(PULL_APP))}.`],
      ['HS256 keyed with the public key', await new SignJWT(claims(PULL_APP)).setProtectedHeader({ alg: 'HS256', typ: 'JWT', x5c }).sign(Buffer.from(publicPem))],
      ['HS256 keyed with the certificate', await new SignJWT(claims(PULL_APP)).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: ts.kid }).sign(await readFile(ts.certPath))],
      ['an unknown kid', await other.sign(claims(PULL_APP))],
      ['a kid of the bundle on another key', await other.sign(claims(PULL_APP), { kid: ts.kid })],
      ['a chain to another root', await other.sign(claims(PULL_APP), { kid: undefined, x5c: [new (await import('node:crypto')).X509Certificate(await readFile(other.certPath)).raw.toString('base64')] })],
      ['the bundle certificate on another key', await other.sign(claims(PULL_APP), { kid: undefined, x5c })],
      ['expired', await ts.sign(claims(PULL_APP, { exp: now() - 120 }))],
      ['not yet valid', await ts.sign(claims(PULL_APP, { nbf: now() + 300 }))],
      ['no exp', await ts.sign(claims(PULL_APP, { exp: undefined }))],
      ['another issuer', await ts.sign(claims(PULL_APP, { iss: 'evil.example' }))],
      ['another audience', await ts.sign(claims(PULL_APP, { aud: 'other-registry' }))],
      ['an audience array without the service', await ts.sign(claims(PULL_APP, { aud: ['a', 'b'] }))],
      ['a tampered payload', (await ts.sign(claims(PULL_APP))).replace(/\.[^.]+\./, `.${b64(claims([{ type: 'repository', name: 'team/app', actions: ['*'] }]))}.`)],
    ];
    for (const [what, token] of forged) {
      assertChallenge(await bearer(url, token), ts, { error: 'invalid_token' }, what);
    }
    const noScope = await bearer(url, await ts.sign(claims([{ type: 'repository', name: 'team/other', actions: ['pull'] }])));
    assertChallenge(noScope, ts, { scope: 'repository:team/app:pull', error: 'insufficient_scope' }, 'a token without the scope');
    const del = await bearer(url, await ts.sign(claims(PULL_APP)), 'DELETE');
    assertChallenge(del, ts, { scope: 'repository:team/app:delete', error: 'insufficient_scope' }, 'delete with a pull grant');
  });
});

describe('external token service: kid flavour (ES256) and a JWK Set (EdDSA)', () => {
  it('kid: the libtrust key ID of a rootcertbundle key, as Portus and docker_auth send it', async () => {
    const ts = await startTokenServer(tokenServerOptions({ keyRef: 'kid', keyType: 'ec' }));
    const src = await tempDir('wharf-extauth-kid-');
    let w: WharfProcess | undefined;
    try {
      w = await startWharf({ config: { upstreams: [], auth: externalAuth(ts) } });
      const img = makeImage();
      const ref = await writeOciLayout(src.path, '1', img);
      await copy(ref, `docker://${w.host}/team/app:1`, { destCreds: `alice:${USERS.alice}` });
      assert.deepEqual(await inspectRaw(`docker://${w.host}/team/app:1`, { creds: `bob:${USERS.bob}` }), img.manifest);
      await assert.rejects(copy(ref, `docker://${w.host}/team/app:2`, { destCreds: `bob:${USERS.bob}` }), 'bob may not push');
      assert.equal(ts.alg, 'ES256');
    } finally {
      await w?.stop();
      await src.cleanup();
      await ts.stop();
    }
  });

  it('jwks: a JWK Set key found by its kid; signingalgorithms limits what is accepted', async () => {
    const ts = await startTokenServer(tokenServerOptions({ keyRef: 'kid', kid: 'portus-2026', keyType: 'ed25519' }));
    const dir = await tempDir('wharf-extauth-jwks-');
    let w: WharfProcess | undefined;
    try {
      const jwk = createPublicKey(await readFile(ts.certPath)).export({ format: 'jwk' });
      const jwks = join(dir.path, 'jwks.json');
      await writeFile(jwks, JSON.stringify({ keys: [{ ...jwk, kid: 'portus-2026', use: 'sig' }] }));
      w = await startWharf({ config: { upstreams: [], auth: externalAuth(ts, { jwks, signingalgorithms: ['EdDSA'] }) } });
      const img = makeImage();
      await pushImage(w.url, 'team/app', '1', img, { username: 'alice', password: USERS.alice });
      const bob = new RegistrySession({ username: 'bob', password: USERS.bob });
      const got = await bob.request(`${w.url}/v2/team/app/manifests/1`, { headers: { accept: img.mediaType } });
      assert.equal(got.status, 200, describeResponse(got));
      assert.deepEqual(got.body, img.manifest);
      const wrongKid = await bearer(`${w.url}/v2/team/app/manifests/1`, await ts.sign(claims(PULL_APP), { kid: 'portus-2025' }));
      assert.equal(wrongKid.status, 401, 'unknown kid');
    } finally {
      await w?.stop();
      await dir.cleanup();
      await ts.stop();
    }
  });
});
