/**
 * wharf's own token server end to end: the /v2/ challenge, /token with and without Basic credentials
 * (GET, and the OAuth2 password grant docker and containerd may POST), skopeo with --creds, static tokens,
 * expiry, and a token from one replica accepted by another sharing Redis.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicHeader, parseChallenge, request, type Credentials } from '../helpers/http.js';
import { makeImage, pushImage, writeOciLayout } from '../helpers/oci-image.js';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { htpasswdFile } from '../helpers/registry.js';
import { copy, inspectRaw } from '../helpers/skopeo.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';

const ALICE: Credentials = { username: 'alice', password: 'alice-pw' };
const CI_TOKEN = 'ci-static-token-0123456789abcdef';

let dir: TempDir;
let htpasswd: string;
let w: WharfProcess;

function authConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    htpasswd,
    tokens: [{ user: 'ci', token: CI_TOKEN }],
    rules: [{ repositories: ['apps/**'], users: ['alice', 'ci'], actions: ['pull', 'push'] }],
    ...extra,
  };
}

before(async () => {
  dir = await tempDir('wharf-token-');
  htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { alice: ALICE.password });
  // anonymousPull left at its default (on); default token expiry (skopeo on a loaded machine may take
  // longer than a short one between asking for a token and using it)
  w = await startWharf({ config: { upstreams: [], auth: authConfig() } });
});
after(async () => {
  await w?.stop();
  await dir?.cleanup();
});

async function token(base: string, query: string, headers: Record<string, string> = {}): Promise<{ status: number; token?: string; body: Record<string, unknown> }> {
  const res = await request(`${base}/token?service=wharf&${query}`, { headers });
  const body = (res.status === 200 ? JSON.parse(res.body.toString('utf8')) : {}) as Record<string, unknown>;
  return { status: res.status, token: body.token as string | undefined, body };
}

/** The `access` claim of a JWT (read, not verified: wharf verifies). */
function accessOf(jwt: string): unknown {
  return (JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as { access: unknown }).access;
}

describe('token flow', () => {
  it('GET /v2/ challenges anonymous callers; /token checks Basic credentials and grants the intersection of asked and allowed', async () => {
    const ping = await request(`${w.url}/v2/`);
    assert.equal(ping.status, 401);
    const ch = parseChallenge(ping.headers['www-authenticate']);
    assert.deepEqual(ch, { scheme: 'bearer', params: { realm: `${w.url}/token`, service: 'wharf' } });

    const wrong = await token(w.url, 'scope=repository:apps/x:pull', { authorization: basicHeader({ ...ALICE, password: 'bad' }) });
    assert.equal(wrong.status, 401, 'wrong credentials');

    const t = await token(w.url, 'scope=repository:apps/x:pull,push&scope=repository:other/y:pull,push', { authorization: basicHeader(ALICE) });
    assert.equal(t.status, 200);
    assert.equal(t.body.access_token, t.token);
    assert.equal(t.body.expires_in, 300, "auth.token.expiry default 5m");
    assert.match(String(t.body.issued_at), /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(accessOf(t.token!), [
      { type: 'repository', name: 'apps/x', actions: ['pull', 'push'] },
      { type: 'repository', name: 'other/y', actions: ['pull'] }, // anonymous pull applies to everyone; push is not granted
    ]);
    const loggedIn = await request(`${w.url}/v2/`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(loggedIn.status, 200, 'docker login: the ping with the token passes');

    const anon = await token(w.url, 'scope=repository:apps/x:pull,push');
    assert.equal(anon.status, 200);
    assert.deepEqual(accessOf(anon.token!), [{ type: 'repository', name: 'apps/x', actions: ['pull'] }], 'anonymous: pull only');
  });

  it('the OAuth2 password grant (POST /token) answers like GET', async () => {
    const form = (password: string) =>
      request(`${w.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', username: 'alice', password, service: 'wharf', scope: 'repository:apps/x:push', client_id: 'test' }).toString(),
      });
    assert.equal((await form('bad')).status, 401);
    const ok = await form(ALICE.password);
    assert.equal(ok.status, 200, describeResponse(ok));
    const body = JSON.parse(ok.body.toString('utf8')) as { access_token: string };
    assert.deepEqual(accessOf(body.access_token), [{ type: 'repository', name: 'apps/x', actions: ['push'] }]);
  });

  it('a token lacking a scope its user may get is 401 insufficient_scope; an expired one is 401 invalid_token', async () => {
    // Short tokens so expiry is seen without a long wait. Not 1 s: exp is in whole seconds, so a 1 s token
    // issued late in a second lives only what is left of it, and a loaded machine missed that window.
    const w = await startWharf({ config: { upstreams: [], auth: authConfig({ token: { expiry: '3s' } }) } });
    try {
      await insufficientThenExpired(w);
    } finally {
      await w.stop();
    }
  });

  async function insufficientThenExpired(w: WharfProcess): Promise<void> {
    const t = await token(w.url, 'scope=repository:apps/y:pull', { authorization: basicHeader(ALICE) });
    const push = await request(`${w.url}/v2/apps/y/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${t.token}` }, body: Buffer.alloc(0) });
    assert.equal(push.status, 401, describeResponse(push));
    assert.equal(push.headers['www-authenticate'], `Bearer realm="${w.url}/token",service="wharf",scope="repository:apps/y:pull,push",error="insufficient_scope"`);

    const pull = await request(`${w.url}/v2/apps/y/tags/list`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(pull.status, 404, `valid token: past auth to NAME_UNKNOWN: ${describeResponse(pull)}`);
    await new Promise((r) => setTimeout(r, 4100));
    const expired = await request(`${w.url}/v2/apps/y/tags/list`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(expired.status, 401, describeResponse(expired));
    assert.deepEqual(errorCodes(expired), ['UNAUTHORIZED']);
    assert.match(expired.headers['www-authenticate'] ?? '', /error="invalid_token"/);

    const forged = `${t.token!.split('.').slice(0, 2).join('.')}.${Buffer.from('x'.repeat(32)).toString('base64url')}`;
    assert.equal((await request(`${w.url}/v2/apps/y/tags/list`, { headers: { authorization: `Bearer ${forged}` } })).status, 401, 'forged signature');
  }

  it('skopeo pushes and pulls with --dest-creds / --src-creds / --creds through the token flow', async () => {
    const src = await tempDir();
    const out = await tempDir();
    try {
      const img = makeImage({ layers: 2 });
      const ref = await writeOciLayout(src.path, 'v1', img);
      await copy(ref, `docker://${w.host}/apps/tool:v1`, { destCreds: 'alice:alice-pw' });
      assert.deepEqual(await inspectRaw(`docker://${w.host}/apps/tool:v1`, { creds: 'alice:alice-pw' }), img.manifest);
      await copy(`docker://${w.host}/apps/tool:v1`, `oci:${out.path}:v1`, { srcCreds: 'alice:alice-pw' });
      assert.deepEqual(await inspectRaw(`docker://${w.host}/apps/tool:v1`), img.manifest, 'anonymous pull (anonymousPull default on)');
      await assert.rejects(copy(ref, `docker://${w.host}/apps/tool:v2`, { destCreds: 'alice:wrong' }), /401|unauthorized|invalid username/i);
    } finally {
      await src.cleanup();
      await out.cleanup();
    }
  });

  it('a static token works as Bearer and as its user\'s password; an unknown Bearer is 401', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'apps/ci', '1', img, { username: 'ci', password: CI_TOKEN });
    const tags = await request(`${w.url}/v2/apps/ci/tags/list`, { headers: { authorization: `Bearer ${CI_TOKEN}` } });
    assert.equal(tags.status, 200, describeResponse(tags));
    const upload = await request(`${w.url}/v2/apps/ci/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${CI_TOKEN}` }, body: Buffer.alloc(0) });
    assert.equal(upload.status, 202, describeResponse(upload));
    assert.equal((await request(`${w.url}/v2/apps/ci/tags/list`, { headers: { authorization: 'Bearer not-a-token' } })).status, 401);
    const other = await request(`${w.url}/v2/`, { headers: { authorization: basicHeader({ username: 'alice', password: CI_TOKEN }) } });
    assert.equal(other.status, 401, 'a static token is the password of its own user only');
  });

  it('never logs passwords or tokens', () => {
    const logs = w.logs();
    for (const secret of [ALICE.password, CI_TOKEN, Buffer.from(`alice:${ALICE.password}`).toString('base64')]) {
      assert.ok(!logs.includes(secret), `log contains a secret: ${secret}`);
    }
    assert.ok(!/eyJhbGciOi/.test(logs), 'log contains a JWT');
  });
});

describe('replicas sharing Redis', () => {
  const prefix = testPrefix();
  let a: WharfProcess | undefined;
  let b: WharfProcess | undefined;
  after(async () => {
    await a?.stop();
    await b?.stop();
    await deleteKeys(REDIS_URL, prefix);
  });

  it('a token issued by one replica is accepted by the other (one shared signing secret)', async () => {
    const config = { upstreams: [], redis: { url: REDIS_URL, keyPrefix: prefix }, auth: authConfig({ anonymousPull: false }) };
    a = await startWharf({ config });
    b = await startWharf({ config, dataDir: a.dataDir });
    const t = await token(a.url, 'scope=repository:apps/shared:pull', { authorization: basicHeader(ALICE) });
    assert.equal(t.status, 200);
    const res = await request(`${b.url}/v2/apps/shared/tags/list`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(res.status, 404, `past auth on the other replica (NAME_UNKNOWN): ${describeResponse(res)}`);
    assert.equal((await request(`${b.url}/v2/apps/shared/tags/list`)).status, 401, 'anonymousPull off');
  });
});

describe('secretFile', () => {
  it('tokens signed with a configured secret survive a restart', async () => {
    const secretFile = join(dir.path, 'token-secret');
    await writeFile(secretFile, 'k'.repeat(48));
    const p = await startWharf({ config: { upstreams: [], auth: authConfig({ anonymousPull: false, token: { secretFile } }) } });
    try {
      const t = await token(p.url, 'scope=repository:apps/s:pull', { authorization: basicHeader(ALICE) });
      await p.restart();
      const res = await request(`${p.url}/v2/`, { headers: { authorization: `Bearer ${t.token}` } });
      assert.equal(res.status, 200, describeResponse(res));
    } finally {
      await p.stop();
    }
  });
});
