/**
 * The web UI behind an external token service (auth.token.rootcertbundle): a real token server process
 * (test/helpers/token-server.ts) checks the passwords and decides every right, as it does for /v2. Two wharf
 * replicas share Redis and a data directory; the token server sits behind a fault proxy so that it can be
 * made unreachable. API: login, the sealed credentials, batched and cached rights, delete only when granted,
 * 503 when the service does not answer, a session read by the other replica. Browser (chromium): log in,
 * see only what is granted, no delete button where delete is not granted, a wrong password refused.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { RegistrySession, request, type Credentials, type HttpResponse } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startTokenServer, type TokenServer } from '../helpers/token-server.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';
import { wharfCli } from '../helpers/wharf-cli.js';
import { launchChromium } from './browser.js';
import { ensureUiBuilt } from './build.js';
import { waitForRepositories } from './fixture.js';

const WAIT = { timeout: 30_000 };
const SERVICE = 'registry.example:5000';
const ISSUER = 'portus.example';
const ALICE: Credentials = { username: 'alice', password: 'alice-secret-pw' };
const BOB: Credentials = { username: 'bob', password: 'bob-secret-pw' };

/** The token service's policy: repository name prefix → actions, per user (nothing for anonymous callers). */
const POLICY: Record<string, Array<[RegExp, string[]]>> = {
  alice: [[/^apps\//, ['pull', 'push', 'delete']], [/^secret\//, ['pull', 'push']], [/^library\/alpine$/, ['pull']]],
  bob: [[/^apps\/web$/, ['pull']]],
};

let dir: TempDir;
let ts: TokenServer;
let front: FaultProxy;
let upstream: RegistryProcess;
let w: WharfProcess;
let w2: WharfProcess;
const keyPrefix = testPrefix();

before(async () => {
  ensureUiBuilt(); // as `make build` makes it, unless dist/ui is current (wharf looks for it when it starts)
  dir = await tempDir('wharf-ui-ext-');
  ts = await startTokenServer({
    service: SERVICE,
    issuer: ISSUER,
    users: { alice: ALICE.password, bob: BOB.password },
    anonymous: 'none',
    grant: (user, type, name, actions) => {
      const allowed = type === 'repository' ? (POLICY[user ?? '']?.find(([re]) => re.test(name))?.[1] ?? []) : [];
      return actions.filter((a) => allowed.includes(a));
    },
  });
  front = await startFaultProxy(new URL(ts.url).origin);
  upstream = await startRegistry();
  const config = {
    upstreams: [{ name: 'hub', url: upstream.url, default: true }],
    redis: { url: REDIS_URL, keyPrefix },
    auth: { token: { realm: `${front.url}/token`, service: SERVICE, issuer: ISSUER, rootcertbundle: ts.certPath } },
  };
  const dataDir = join(dir.path, 'data');
  [w, w2] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
  await pushImage(w.url, 'apps/web', '1.0', makeImage(), ALICE);
  await pushImage(w.url, 'apps/web', 'old', makeImage(), ALICE);
  await pushImage(w.url, 'apps/tool', '1', makeImage(), ALICE);
  await pushImage(w.url, 'secret/vault', '1', makeImage(), ALICE);
  await pushImage(upstream.url, 'library/alpine', '3', makeImage({ layers: 1 }));
  const pull = await new RegistrySession(ALICE).request(`${w.url}/v2/library/alpine/manifests/3`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(pull.status, 200, 'alice mirrors alpine');
  // Basic on the API goes to the token service too (what `wharf ls` sends).
  await waitForRepositories(w.url, ALICE, 4);
});
after(async () => {
  await Promise.all([w?.stop(), w2?.stop()]);
  await upstream?.stop();
  await front?.stop();
  await ts?.stop();
  await dir?.cleanup();
  await deleteKeys(REDIS_URL, keyPrefix);
});

const json = (r: HttpResponse) => JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
const names = (r: HttpResponse) => (json(r).items as Array<{ name: string }>).map((i) => i.name);

async function login(base: string, who: Credentials): Promise<HttpResponse> {
  return request(`${base}/_wharf/api/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wharf-csrf': 'login' },
    body: JSON.stringify({ username: who.username, password: who.password }),
  });
}

async function session(base: string, who: Credentials): Promise<{ cookie: string; csrf: string }> {
  const r = await login(base, who);
  assert.equal(r.status, 200, r.body.toString());
  return { cookie: (r.headers['set-cookie'] ?? '').split(';')[0]!, csrf: json(r).csrf as string };
}

describe('web UI API with an external token service', () => {
  it('the token service checks the password; the session user is the token subject; the password is not readable in the cookie', async () => {
    const bad = await login(w.url, { username: 'alice', password: 'wrong' });
    assert.equal(bad.status, 401, bad.body.toString());
    assert.match(bad.body.toString(), /invalid username or password/);
    assert.equal(bad.headers['set-cookie'], undefined);
    assert.ok(ts.requests.some((r) => r.user === 'alice' && r.status === 401), 'the wrong password went to the token service');

    const ok = await login(w.url, ALICE);
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(json(ok).user, 'alice');
    const setCookie = ok.headers['set-cookie'] ?? '';
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    const value = setCookie.split(';')[0]!.split('=')[1]!;
    const payload = Buffer.from(value.split('.')[0]!, 'base64url').toString('utf8');
    assert.ok(!setCookie.includes(ALICE.password) && !payload.includes(ALICE.password), 'the password is sealed, not merely encoded');
    const s = await request(`${w.url}/_wharf/api/session`, { headers: { cookie: setCookie.split(';')[0]! } });
    assert.equal(json(s).authEnabled, true);
    assert.equal(json(s).user, 'alice');
  });

  it('lists only what the service grants pull on, asking for every repository in one batched request, then from the cache', async () => {
    const bob = await session(w.url, BOB);
    const before = ts.requests.length;
    const list = await request(`${w.url}/_wharf/api/repositories`, { headers: { cookie: bob.cookie } });
    assert.equal(list.status, 200, list.body.toString());
    assert.deepEqual(names(list), ['apps/web']);
    const asked = ts.requests.slice(before).filter((r) => r.user === 'bob');
    assert.equal(asked.length, 1, `one token request for four repositories: ${JSON.stringify(asked)}`);
    for (const repo of ['apps/web', 'apps/tool', 'secret/vault', 'library/alpine']) {
      assert.ok(asked[0]!.scope?.split(' ').includes(`repository:${repo}:pull,push,delete`), `${repo} in the batch: ${asked[0]!.scope}`);
    }
    const again = await request(`${w.url}/_wharf/api/repositories?q=web`, { headers: { cookie: bob.cookie } });
    assert.deepEqual(names(again), ['apps/web']);
    const repo = await request(`${w.url}/_wharf/api/repository?name=apps/web`, { headers: { cookie: bob.cookie } });
    assert.deepEqual(json(repo).rights, ['pull']);
    assert.equal(ts.requests.length, before + 1, 'the session\'s rights are reused (for at most 60 s)');

    const alice = await session(w.url, ALICE);
    const all = await request(`${w.url}/_wharf/api/repositories`, { headers: { cookie: alice.cookie } });
    assert.deepEqual(names(all), ['apps/tool', 'apps/web', 'library/alpine', 'secret/vault']);
    const hidden = await request(`${w.url}/_wharf/api/repository?name=secret/vault`, { headers: { cookie: bob.cookie } });
    assert.equal(hidden.status, 404, 'a repository not granted is not known');
    const anonymous = await request(`${w.url}/_wharf/api/repositories`);
    assert.deepEqual(names(anonymous), [], 'the service grants anonymous callers nothing here');
  });

  it('deletes only where the service grants delete', async () => {
    const bob = await session(w.url, BOB);
    const refused = await request(`${w.url}/_wharf/api/image?name=apps/web&ref=old`, { method: 'DELETE', headers: { cookie: bob.cookie, 'x-wharf-csrf': bob.csrf } });
    assert.equal(refused.status, 403, refused.body.toString());
    const alice = await session(w.url, ALICE);
    const vault = await request(`${w.url}/_wharf/api/image?name=secret/vault&ref=1`, { method: 'DELETE', headers: { cookie: alice.cookie, 'x-wharf-csrf': alice.csrf } });
    assert.equal(vault.status, 403, `alice has pull and push on secret/vault, not delete: ${vault.body.toString()}`);
    const token = await ts.sign({ iss: ISSUER, aud: SERVICE, sub: 'bob', exp: Math.floor(Date.now() / 1000) + 60, access: [{ type: 'repository', name: 'apps/web', actions: ['pull'] }] });
    const bearer = await request(`${w.url}/_wharf/api/repository?name=apps/web`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bearer.status, 200, `the service's own token works on the API as on /v2: ${bearer.body.toString()}`);
    assert.deepEqual(json(bearer).rights, ['pull']);
  });

  it('gc and verify are not open to loopback callers: the registry is not open (nobody is in ui.admins here)', async () => {
    const start = (headers: Record<string, string>) =>
      request(`${w.url}/_wharf/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ kind: 'verify' }) });
    const anonymous = await start({ 'x-wharf-csrf': 'x' });
    assert.equal(anonymous.status, 401, anonymous.body.toString());
    const alice = await session(w.url, ALICE);
    const refused = await start({ cookie: alice.cookie, 'x-wharf-csrf': alice.csrf });
    assert.equal(refused.status, 403, refused.body.toString());
    const s = await request(`${w.url}/_wharf/api/session`, { headers: { cookie: alice.cookie } });
    assert.equal(json(s).maintain, false);
  });

  it('the dashboard\'s most pulled list shows what the service grants the viewer pull on', async () => {
    const alice = await session(w.url, ALICE);
    const bob = await session(w.url, BOB);
    const top = async (who: { cookie: string }) => {
      const r = await request(`${w.url}/_wharf/api/stats`, { headers: { cookie: who.cookie } });
      assert.equal(r.status, 200, r.body.toString());
      return ((json(r).topPulls as { day: Array<{ repository: string }> }).day).map((p) => p.repository);
    };
    let seen: string[] = [];
    for (let i = 0; i < 150 && !seen.includes('library/alpine'); i++) {
      seen = await top(alice);
      if (!seen.includes('library/alpine')) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(seen.includes('library/alpine'), `alice (granted pull) sees alpine among the most pulled: ${JSON.stringify(seen)}`);
    assert.ok(!(await top(bob)).includes('library/alpine'), 'bob (not granted) does not');
  });

  it('another replica reads the session (the key is shared through Redis)', async () => {
    const alice = await session(w.url, ALICE);
    const s = await request(`${w2.url}/_wharf/api/session`, { headers: { cookie: alice.cookie } });
    assert.equal(json(s).user, 'alice');
    const list = await request(`${w2.url}/_wharf/api/repositories`, { headers: { cookie: alice.cookie } });
    assert.equal(list.status, 200, list.body.toString());
    assert.equal(names(list).length, 4, 'the other replica opens the sealed credentials and asks the service itself');

    // Logging out on one replica logs the cookie out on the other too (the revocation is in Redis).
    const out = await request(`${w.url}/_wharf/api/session`, { method: 'DELETE', headers: { cookie: alice.cookie, 'x-wharf-csrf': alice.csrf } });
    assert.equal(out.status, 204, out.body.toString());
    const after = await request(`${w2.url}/_wharf/api/session`, { headers: { cookie: alice.cookie } });
    assert.equal(json(after).user, null, 'the other replica refuses the logged-out cookie');
  });

  it('an unreachable or failing token service is 503 with a clear message', async () => {
    const bob = await session(w.url, BOB);
    try {
      front.inject({ match: { path: '/token' }, action: { kind: 'drop' } });
      const down = await login(w.url, ALICE);
      assert.equal(down.status, 503, down.body.toString());
      assert.match(down.body.toString(), /token service did not answer/);
      const list = await request(`${w.url}/_wharf/api/repositories`, { headers: { cookie: bob.cookie } });
      assert.equal(list.status, 503, `a new session's rights cannot be asked: ${list.body.toString()}`);
      front.clearFaults();
      front.inject({ match: { path: '/token' }, action: { kind: 'status', status: 500, body: 'oops' } });
      const failing = await login(w.url, ALICE);
      assert.equal(failing.status, 503, failing.body.toString());
      assert.match(failing.body.toString(), /token service answered 500/);
    } finally {
      front.clearFaults();
    }
    const back = await request(`${w.url}/_wharf/api/repositories`, { headers: { cookie: bob.cookie } });
    assert.deepEqual(names(back), ['apps/web'], 'a failure is not remembered');
  });
});

describe('wharf ls and stats read the same API', () => {
  const as = (who: Credentials) => ({ WHARF_USERNAME: who.username, WHARF_PASSWORD: who.password });

  it('ls shows what the service grants the user, with the figures the API gives the UI', async () => {
    const bob = await wharfCli(['ls', '--url', w.url], as(BOB));
    assert.equal(bob.code, 0, bob.stderr);
    assert.match(bob.stdout, /^REPOSITORY\s+KIND\s+TAGS\s+SIZE\s+LAST ACCESS$/m);
    assert.deepEqual(bob.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['apps/web']);
    const wrong = await wharfCli(['ls', '--url', w.url], { WHARF_USERNAME: 'bob', WHARF_PASSWORD: 'nope' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /rejected the credentials/);

    const cli = await wharfCli(['ls', '--url', w.url, '--json'], as(ALICE));
    assert.equal(cli.code, 0, cli.stderr);
    const repos = (JSON.parse(cli.stdout) as { repositories: Array<Record<string, unknown> & { tags: Array<Record<string, unknown>> }> }).repositories;
    const api = await request(`${w.url}/_wharf/api/repositories`, { headers: { authorization: `Basic ${Buffer.from(`${ALICE.username}:${ALICE.password}`).toString('base64')}` } });
    const items = json(api).items as Array<{ name: string; bytes: number; tagCount: number }>;
    assert.deepEqual(repos.map((r) => [r.name, r.bytes, r.tags.length]), items.map((i) => [i.name, i.bytes, i.tagCount]), 'the same figures as the UI');
    const alpine = repos.find((r) => r.name === 'library/alpine')!;
    for (const k of ['name', 'key', 'local', 'mirrored', 'tags', 'manifests', 'blobs', 'bytes']) assert.ok(k in alpine, `--json keeps ${k}`);
    for (const k of ['tag', 'digest', 'mediaType', 'origin', 'checkedAt']) assert.ok(k in alpine.tags[0]!, `--json tags keep ${k}`);
    assert.equal(alpine.tags[0]!.origin, 'upstream');
  });

  it('stats needs a logged-in user and prints the API\'s figures', async () => {
    const anonymous = await wharfCli(['stats', '--url', w.url]);
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /needs a registry user's credentials .*WHARF_USERNAME\/WHARF_PASSWORD/);
    const s = await wharfCli(['stats', '--url', w.url], as(BOB));
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^hit ratio: /m);
    assert.match(s.stdout, /^repositories: \d+ \(\d+ local, 1 mirrored\); \d+ tags; 0 uploads in progress$/m);
    const j = await wharfCli(['stats', '--url', w.url, '--json'], as(BOB));
    const figures = JSON.parse(j.stdout) as { traffic: { requests: number }; requests: number; cache: Record<string, unknown> };
    assert.equal(figures.traffic.requests, figures.requests);
    for (const k of ['mirroredBytes', 'mirroredBlobs', 'localBytes', 'localBlobs', 'unlinkedBytes', 'unlinkedBlobs', 'highWatermark', 'lowWatermark']) assert.ok(k in figures.cache, `--json keeps cache.${k}`);
  });
});

describe('web UI in chromium with an external token service', () => {
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  before(async () => {
    browser = await launchChromium();
  });
  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
  });

  async function open(): Promise<Page> {
    const context = await browser.newContext();
    contexts.push(context);
    const page = await context.newPage();
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${w.url}/`);
    return page;
  }

  async function fillLogin(page: Page, who: Credentials): Promise<void> {
    await page.getByRole('link', { name: 'Log in' }).click();
    await page.getByLabel('User name').fill(who.username);
    await page.getByLabel('Password or token').fill(who.password);
    await page.getByRole('button', { name: 'Log in' }).click();
  }

  it('refuses a wrong password', async () => {
    const page = await open();
    await fillLogin(page, { username: 'bob', password: 'not-bobs' });
    await page.getByRole('alert').filter({ hasText: 'invalid username or password' }).waitFor(WAIT);
    assert.equal(await page.getByRole('button', { name: 'Log out' }).count(), 0);
  });

  it('a user sees only the granted repositories and gets no delete button where delete is not granted', async () => {
    const page = await open();
    await fillLogin(page, BOB);
    await page.getByRole('button', { name: 'Log out' }).waitFor(WAIT);
    await page.getByText('1 repository').waitFor(WAIT);
    await page.getByRole('link', { name: 'apps/web' }).click();
    await page.getByRole('link', { name: 'old' }).waitFor(WAIT);
    assert.equal(await page.getByRole('button', { name: /Delete|Purge/ }).count(), 0);
    const status = await page.evaluate(async () => {
      const s = (await (await fetch('/_wharf/api/session')).json()) as { csrf: string };
      return (await fetch('/_wharf/api/image?name=apps/web&ref=old', { method: 'DELETE', headers: { 'x-wharf-csrf': s.csrf } })).status;
    });
    assert.equal(status, 403, 'the server refuses it too');
  });

  it('a user granted delete deletes a tag', async () => {
    const page = await open();
    await fillLogin(page, ALICE);
    await page.getByRole('button', { name: 'Log out' }).waitFor(WAIT);
    await page.getByText('4 repositories').waitFor(WAIT);
    await page.goto(`${w.url}/#/repo/apps%2Fweb`);
    await page.getByRole('button', { name: 'Delete tag old' }).click();
    await page.getByRole('link', { name: 'old' }).waitFor({ state: 'detached', ...WAIT });
    const tags = await new RegistrySession(ALICE).request(`${w.url}/v2/apps/web/tags/list`);
    assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['1.0']);
  });
});
