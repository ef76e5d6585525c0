/**
 * The web UI's JSON API (/_wharf/api/) against a real wharf with htpasswd auth and a Distribution upstream:
 * login and the session cookie's flags, the CSRF guard, listing only what the viewer may pull, delete under
 * the /v2 rule, the one raw-path rule, the HTML's security headers, and the hit ratio.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { basicHeader, request, type Credentials, type HttpResponse } from '../helpers/http.js';
import { ADMIN, HOSTILE, READER, pullManifest, startUiFixture, type UiFixture } from './fixture.js';

let f: UiFixture;
before(async () => {
  f = await startUiFixture();
});
after(async () => {
  await f?.stop();
});

const api = (path: string) => `${f.wharf.url}/_wharf/api/${path}`;
const json = (r: HttpResponse) => JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;

async function login(who: Credentials): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const r = await request(api('session'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wharf-csrf': 'login' },
    body: JSON.stringify({ username: who.username, password: who.password }),
  });
  assert.equal(r.status, 200, r.body.toString());
  const setCookie = r.headers['set-cookie'] ?? '';
  return { cookie: setCookie.split(';')[0]!, csrf: json(r).csrf as string, setCookie };
}

/** The repositories list is a snapshot a few seconds old at most: wait (bounded) until it shows `want`. */
async function listed(path: string, headers: Record<string, string>, want: string[]): Promise<string[]> {
  let got: string[] = [];
  for (let i = 0; i < 300; i++) {
    got = names(await request(api(path), { headers }));
    if (JSON.stringify(got) === JSON.stringify(want)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return got;
}

function names(r: HttpResponse): string[] {
  return (json(r).items as Array<{ name: string }>).map((i) => i.name);
}

describe('web UI API', () => {
  it('logs in with registry credentials: an HttpOnly, SameSite=Strict session cookie; a wrong password gets no cookie and no Basic prompt', async () => {
    const bad = await request(api('session'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-wharf-csrf': 'login' },
      body: JSON.stringify({ username: 'admin', password: 'nope' }),
    });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers['set-cookie'], undefined);
    assert.doesNotMatch(bad.headers['www-authenticate'] ?? '', /^Basic/i);

    const noCsrf = await request(api('session'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: ADMIN.password }) });
    assert.equal(noCsrf.status, 403, 'a login without X-Wharf-CSRF (a cross-site form) is refused');
    assert.equal(noCsrf.headers['set-cookie'], undefined);

    const s = await login(ADMIN);
    assert.match(s.setCookie, /^wharf_session=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict$/, s.setCookie);
    assert.doesNotMatch(s.setCookie, /Secure/, 'plain HTTP: no Secure flag');
    const who = json(await request(api('session'), { headers: { cookie: s.cookie } }));
    assert.equal(who.user, 'admin');
    assert.equal(who.csrf, s.csrf);

    // A cookie whose payload was changed (another user name) is no session at all.
    const [payload, mac] = s.cookie.slice('wharf_session='.length).split('.');
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), u: 'root' })).toString('base64url');
    const as = json(await request(api('session'), { headers: { cookie: `wharf_session=${forged}.${mac}` } }));
    assert.equal(as.user, null);
  });

  it('lists and searches only what the viewer may pull', async () => {
    const anon = await request(api('repositories'));
    assert.equal(anon.status, 200);
    assert.deepEqual(names(anon), [], 'anonymous may pull nothing here');

    const reader = await login(READER);
    assert.deepEqual(await listed('repositories', { cookie: reader.cookie }, ['apps/multi', 'apps/web']), ['apps/multi', 'apps/web']);
    const admin = await login(ADMIN);
    assert.deepEqual(names(await request(api('repositories'), { headers: { cookie: admin.cookie } })), ['apps/multi', 'apps/web', 'secret/vault']);
    // The same rule for the CLI's Basic credentials.
    assert.deepEqual(names(await request(api('repositories'), { headers: { authorization: basicHeader(READER) } })), ['apps/multi', 'apps/web']);

    const byTag = json(await request(api('repositories?q=OLD'), { headers: { cookie: reader.cookie } }));
    const item = (byTag.items as Array<{ bytes: number; updatedAt: number }>)[0]!;
    assert.deepEqual(byTag.items, [{ name: 'apps/web', key: 'hub/apps/web', upstream: 'hub', local: true, mirrored: false, tagCount: 2, pulls: 0, bytes: item.bytes, manifests: 1, blobs: 3, updatedAt: item.updatedAt, matchedTags: ['old'] }]);
    const detailed = json(await request(api('repositories?q=OLD&detail=tags'), { headers: { cookie: reader.cookie } }));
    assert.deepEqual((detailed.items as Array<{ tags: Array<{ tag: string }> }>)[0]!.tags.map((t) => t.tag).sort(), ['1.0', 'old'], 'detail=tags: each item with its tags (wharf ls --json)');
    const bySize = names(await request(api('repositories?sort=size&order=desc&perPage=1&page=2'), { headers: { cookie: reader.cookie } }));
    assert.equal(bySize.length, 1);
    assert.equal((await request(api('repositories?sort=nope'), { headers: { cookie: reader.cookie } })).status, 400);
    assert.deepEqual(names(await request(api('repositories?kind=mirrored'), { headers: { cookie: reader.cookie } })), []);

    const hidden = await request(api('repository?name=secret/vault'), { headers: { cookie: reader.cookie } });
    assert.equal(hidden.status, 404, 'a repository the viewer may not pull is not known');
  });

  it('shows a multi-platform image and a config; hostile label text comes back as JSON data, never HTML', async () => {
    const reader = await login(READER);
    const repo = json(await request(api('repository?name=apps/multi'), { headers: { cookie: reader.cookie } }));
    const tag = (repo.tags as Array<Record<string, unknown>>)[0]!;
    assert.equal(tag.tag, '2.0');
    assert.equal(tag.digest, f.multi.digest);
    assert.deepEqual(tag.platforms, ['linux/amd64', 'linux/arm64/v8']);
    assert.deepEqual(repo.rights, ['pull']);

    const index = json(await request(api('image?name=apps/multi&ref=2.0'), { headers: { cookie: reader.cookie } }));
    assert.deepEqual((index.manifests as Array<{ digest: string }>).map((m) => m.digest), f.multi.images.map((i) => i.manifestDigest));

    const img = await request(api('image?name=apps/web&ref=1.0'), { headers: { cookie: reader.cookie } });
    assert.match(img.headers['content-type'] ?? '', /^application\/json/);
    assert.equal(img.headers['x-content-type-options'], 'nosniff');
    const body = json(img);
    const content = (body.config as { content: { labels: Record<string, string>; entrypoint: string[] } }).content;
    assert.equal(content.labels['org.example.note'], HOSTILE);
    assert.deepEqual(content.entrypoint, ['/bin/web']);
    assert.deepEqual((body.layers as Array<{ digest: string }>).map((l) => l.digest), f.web.layers.map((l) => l.digest));

    // A hostile name is refused by the name grammar, as JSON (never HTML a browser would render).
    const bad = await request(api(`repository?name=${encodeURIComponent('<script>alert(1)</script>')}`), { headers: { cookie: reader.cookie } });
    assert.equal(bad.status, 400);
    assert.match(bad.headers['content-type'] ?? '', /^application\/json/);
    assert.equal(bad.headers['x-content-type-options'], 'nosniff');
    assert.equal((json(bad).errors as Array<{ code: string }>)[0]!.code, 'NAME_INVALID');
  });

  it('deletes only with the delete grant and the session CSRF token', async () => {
    const reader = await login(READER);
    const admin = await login(ADMIN);
    const del = (cookie: string, csrf?: string) =>
      request(api('image?name=apps/web&ref=old'), { method: 'DELETE', headers: { cookie, ...(csrf !== undefined ? { 'x-wharf-csrf': csrf } : {}) } });

    assert.equal((await del(reader.cookie, reader.csrf)).status, 403, 'reader: pull only');
    assert.equal((await del(admin.cookie)).status, 403, 'no CSRF header');
    assert.equal((await del(admin.cookie, reader.csrf)).status, 403, "another session's CSRF token");
    const tags = () => request(`${f.wharf.url}/v2/apps/web/tags/list`, { headers: { authorization: basicHeader(ADMIN) } });
    assert.deepEqual(JSON.parse((await tags()).body.toString()).tags, ['1.0', 'old']);

    const ok = await del(admin.cookie, admin.csrf);
    assert.equal(ok.status, 200, ok.body.toString());
    assert.deepEqual(JSON.parse((await tags()).body.toString()).tags, ['1.0']);
  });

  it('matches the raw path exactly: other spellings of /_wharf/api/ are not the API', async () => {
    const reader = await login(READER);
    for (const p of ['/_Wharf/api/repositories', '/_wharf/API/repositories', '/_wharf/api//repositories', '/_wharf/api/repositories/', '/_wharf/api/%72epositories']) {
      const r = await request(`${f.wharf.url}${p}`, { headers: { cookie: reader.cookie } });
      assert.notEqual(r.status, 200, p);
      assert.doesNotMatch(r.body.toString(), /apps\/web/, p);
    }
  });

  it('serves the UI with a strict CSP and cache headers; logout clears the cookie', async () => {
    const page = await request(`${f.wharf.url}/`);
    assert.equal(page.status, 200);
    const csp = page.headers['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(page.headers['cache-control'], 'no-cache');
    const html = page.body.toString();
    assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]/, 'no inline script');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from another host');
    const js = /src="(\/assets\/main\.[A-Z0-9]+\.js)"/.exec(html)?.[1];
    assert.ok(js);
    const asset = await request(`${f.wharf.url}${js}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers['cache-control'] ?? '', /immutable/);
    assert.match(asset.headers['content-type'] ?? '', /javascript/);

    const s = await login(READER);
    assert.equal((await request(api('session'), { method: 'DELETE', headers: { cookie: s.cookie } })).status, 403, 'logout needs the CSRF token too');
    const out = await request(api('session'), { method: 'DELETE', headers: { cookie: s.cookie, 'x-wharf-csrf': s.csrf } });
    assert.equal(out.status, 204);
    assert.match(out.headers['set-cookie'] ?? '', /^wharf_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict/);
    // A copy of the cookie kept from before the logout (a stolen one) no longer logs anyone in.
    const replay = json(await request(api('session'), { headers: { cookie: s.cookie } }));
    assert.equal(replay.user, null, 'the logged-out cookie is refused although it has not expired');
    assert.equal((await request(api('repositories?q=vault'), { headers: { cookie: s.cookie } })).status, 200);
    const other = await login(READER);
    assert.equal(json(await request(api('session'), { headers: { cookie: other.cookie } })).user, READER.username, "another session of the same user is not affected");
  });

  it('reports the hit ratio with the metrics definition, moving after pulls', async () => {
    const reader = await login(READER);
    const stats = async () => json(await request(api('stats'), { headers: { cookie: reader.cookie } })) as { hits: number; requests: number; hitRatio: number | null; upstreams: unknown[] };
    const before = await stats();
    // Cache figures name upstreams and their traffic: not for anonymous callers when auth is configured.
    assert.equal((await request(api('stats'))).status, 401);
    assert.equal((await pullManifest(f.wharf.url, 'library/alpine', '3', READER)).status, 200);
    const miss = await stats();
    assert.equal(miss.requests, before.requests + 1);
    assert.equal(miss.hits, before.hits);
    assert.equal((await pullManifest(f.wharf.url, 'library/alpine', '3', READER)).status, 200);
    const hit = await stats();
    assert.equal(hit.hits, miss.hits + 1);
    assert.equal(hit.hitRatio, hit.hits / hit.requests);
    // The mirrored repository shows in the list, as mirrored from its upstream, once the list's snapshot
    // (rebuilt once 3 s old) is renewed.
    let mirrored: unknown[] = [];
    for (let i = 0; i < 300 && mirrored.length === 0; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      const list = json(await request(api('repositories?kind=mirrored'), { headers: { cookie: reader.cookie } }));
      mirrored = (list.items as Array<{ name: string; upstream: string }>).map((i) => [i.name, i.upstream]);
    }
    assert.deepEqual(mirrored, [['library/alpine', 'hub']]);
  });

  it('purges a mirrored image for a user with the delete grant; a reader is refused', async () => {
    assert.equal((await pullManifest(f.wharf.url, 'library/alpine', '3', READER)).status, 200);
    const reader = await login(READER);
    const admin = await login(ADMIN);
    const purge = (s: { cookie: string; csrf: string }) =>
      request(api('image?name=library/alpine&ref=3'), { method: 'DELETE', headers: { cookie: s.cookie, 'x-wharf-csrf': s.csrf } });
    const view = json(await request(api('repository?name=library/alpine'), { headers: { cookie: reader.cookie } }));
    assert.equal(view.canPurge, false);
    assert.equal((await purge(reader)).status, 403);
    assert.equal(json(await request(api('repository?name=library/alpine'), { headers: { cookie: admin.cookie } })).canPurge, true);
    const ok = await purge(admin);
    assert.equal(ok.status, 200, ok.body.toString());
    assert.equal(json(ok).origin, 'upstream');
    const after = json(await request(api('repository?name=library/alpine'), { headers: { cookie: admin.cookie } }));
    assert.deepEqual(after.tags, [], 'the mirrored tag is gone from wharf (a later pull fetches it again)');
  });
});
