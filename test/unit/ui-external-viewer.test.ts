/**
 * The web UI's viewer behind an external token service (src/http/api/external-viewer.ts), with a fake token
 * service (a function that records what it was asked and answers grants): rights are asked in batches of at
 * most 100 scopes, at most 4 requests at once, reused for at most 60 s and never past the token's `exp`; a
 * session's sealed credentials open only in their own session; refusals end a session but leave an
 * anonymous visitor with nothing. The real token server is in test/ui/extauth.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { Context } from 'koa';
import type { RepoRef } from '../../src/core/types.js';
import { ExternalViewers, RIGHTS_TTL_MS, type ExternalViewerDeps } from '../../src/http/api/external-viewer.js';
import { SESSION_COOKIE, Sessions } from '../../src/http/api/session.js';
import type { GrantedAccess } from '../../src/http/auth/external-token.js';
import { LoginLimiter } from '../../src/http/auth/login-limiter.js';
import type { Credentials, TokenAnswer } from '../../src/http/auth/token-service.js';
import { macUnder } from '../../src/http/auth/tokens.js';
import { isRegistryError } from '../../src/oci/index.js';

interface Asked {
  user?: string;
  scopes: string[];
}

function setup(o: { grant?: (user: string | undefined, name: string) => string[]; lifetimeMs?: number; refuse?: (user: string | undefined) => boolean } = {}) {
  let now = 1_000_000;
  const asked: Asked[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const key = randomBytes(32);
  const sessions = new Sessions({ mac: macUnder(() => key), now: () => now, random: randomBytes });
  const grant = o.grant ?? ((user) => (user ? ['pull', 'delete'] : []));
  const fakeTokenService = {
    async token(creds: Credentials | undefined, scopes: readonly string[]): Promise<TokenAnswer> {
      asked.push({ ...(creds ? { user: creds.username } : {}), scopes: [...scopes] });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      if (o.refuse?.(creds?.username)) return { kind: 'refused' };
      const access: GrantedAccess[] = scopes.map((s) => {
        const name = s.split(':')[1]!;
        return { type: 'repository', name, actions: grant(creds?.username, name) };
      });
      return { kind: 'granted', token: { access, subject: creds ? `sub-${creds.username}` : '', expiresAt: now + (o.lifetimeMs ?? 300_000) } };
    },
  };
  const fakeAuth: ExternalViewerDeps['auth'] = {
    scopeName: (repo: RepoRef) => repo.key,
    rights: (grants: readonly GrantedAccess[], repo: RepoRef) =>
      new Set(grants.filter((g) => g.name === repo.key).flatMap((g) => g.actions) as Array<'pull' | 'push' | 'delete'>),
    get service(): ExternalViewerDeps['auth']['service'] {
      throw new Error('not used here');
    },
  };
  const viewers = new ExternalViewers({
    auth: fakeAuth,
    tokens: fakeTokenService,
    sessions,
    limiter: new LoginLimiter({ burst: 3, refillMs: 60_000, maxAddresses: 100, now: () => now }),
    now: () => now,
  });
  const ctx = (headers: Record<string, string>): Context => ({ get: (h: string) => headers[h.toLowerCase()] ?? '', ip: '192.0.2.1' }) as unknown as Context;
  const login = async (user: string) => {
    const subject = await viewers.login({ username: user, password: `${user}-pw` }, '192.0.2.1');
    const { cookie, session } = sessions.issue(subject, { username: user, password: `${user}-pw` });
    return { ctx: ctx({ cookie: `${SESSION_COOKIE}=${cookie}` }), session };
  };
  return {
    viewers, sessions, asked, ctx, login,
    maxInFlight: () => maxInFlight,
    advance: (ms: number) => (now += ms),
  };
}

const repos = (n: number): RepoRef[] => Array.from({ length: n }, (_, i) => ({ key: `team/app-${String(i).padStart(3, '0')}` }) as RepoRef);

describe('external viewer: rights from the token service', () => {
  it('asks in batches of at most 100 scopes, 4 at a time, with the session\'s credentials; the user is the token subject', async () => {
    const t = setup();
    const { ctx, session } = await t.login('alice');
    assert.equal(session.user, 'sub-alice');
    t.asked.length = 0;
    const v = await t.viewers.viewer(ctx);
    const all = repos(950);
    await v.load!(all);
    assert.deepEqual(t.asked.map((a) => a.scopes.length), [100, 100, 100, 100, 100, 100, 100, 100, 100, 50]);
    assert.ok(t.asked.every((a) => a.user === 'alice'));
    assert.equal(t.asked[0]!.scopes[0], 'repository:team/app-000:pull,push,delete');
    assert.ok(t.maxInFlight() <= 4, `at most 4 token requests at once, saw ${t.maxInFlight()}`);
    assert.deepEqual([...v.rights(all[7]!)].sort(), ['delete', 'pull']);
  });

  it('reuses rights for at most 60 s, and never past the token\'s expiry', async () => {
    const t = setup({ lifetimeMs: 20_000 });
    const { ctx } = await t.login('alice');
    t.asked.length = 0;
    const r = repos(3);
    await (await t.viewers.viewer(ctx)).load!(r);
    await (await t.viewers.viewer(ctx)).load!(r);
    assert.equal(t.asked.length, 1, 'cached');
    t.advance(20_001);
    await (await t.viewers.viewer(ctx)).load!(r);
    assert.equal(t.asked.length, 2, 'the token expired after 20 s: asked again');

    const long = setup({ lifetimeMs: 3_600_000 });
    const s = await long.login('alice');
    long.asked.length = 0;
    await (await long.viewers.viewer(s.ctx)).load!(r);
    long.advance(RIGHTS_TTL_MS - 1);
    await (await long.viewers.viewer(s.ctx)).load!(r);
    assert.equal(long.asked.length, 1);
    long.advance(2);
    await (await long.viewers.viewer(s.ctx)).load!(r);
    assert.equal(long.asked.length, 2, 'past 60 s: asked again, however long the token lives');
  });

  it('rights are per session: another user asks for their own', async () => {
    const t = setup({ grant: (user, name) => (user === 'alice' || name.endsWith('000') ? ['pull'] : []) });
    const a = await t.login('alice');
    const b = await t.login('bob');
    const r = repos(2);
    const va = await t.viewers.viewer(a.ctx);
    await va.load!(r);
    const vb = await t.viewers.viewer(b.ctx);
    await vb.load!(r);
    assert.deepEqual([va.rights(r[1]!).has('pull'), vb.rights(r[1]!).has('pull'), vb.rights(r[0]!).has('pull')], [true, false, true]);
    const unloaded = await t.viewers.viewer(b.ctx);
    assert.equal(unloaded.rights(r[0]!).size, 0, 'nothing is granted before load');
  });

  it('a refused session must log in again; an anonymous visitor refused gets nothing', async () => {
    let refuseAlice = false;
    const t = setup({ refuse: (u) => u === undefined || (u === 'alice' && refuseAlice), grant: () => ['pull'] });
    const { ctx } = await t.login('alice');
    refuseAlice = true;
    await assert.rejects((await t.viewers.viewer(ctx)).load!(repos(1)), (e: unknown) => isRegistryError(e) && e.status === 401 && /log in again/.test(e.message));
    const anon = await t.viewers.viewer(t.ctx({}));
    await anon.load!(repos(2));
    assert.equal(anon.rights(repos(1)[0]!).size, 0);
    assert.equal(anon.caller.kind, 'anonymous');
  });

  it('a wrong password is 401 and counted; past the limit 429 without asking the service', async () => {
    const t = setup({ refuse: (u) => u === 'mallory' });
    for (let i = 0; i < 3; i++) {
      await assert.rejects(t.viewers.login({ username: 'mallory', password: 'x' }, '192.0.2.1'), (e: unknown) => isRegistryError(e) && e.status === 401);
    }
    const before = t.asked.length;
    await assert.rejects(t.viewers.login({ username: 'mallory', password: 'x' }, '192.0.2.1'), (e: unknown) => isRegistryError(e) && e.status === 429);
    assert.equal(t.asked.length, before);
  });
});

describe('session cookies: sealed credentials', () => {
  it('open in their own session only, and not without the key', () => {
    const t = setup();
    const { cookie, session } = t.sessions.issue('alice', { username: 'alice', password: 'p4ss' });
    assert.ok(!cookie.includes('p4ss') && !Buffer.from(cookie.split('.')[0]!, 'base64url').toString().includes('p4ss'));
    const read = t.sessions.read(cookie)!;
    assert.deepEqual(t.sessions.unseal(read), { username: 'alice', password: 'p4ss' });
    const other = t.sessions.issue('mallory').session;
    assert.equal(t.sessions.unseal({ ...other, sealed: session.sealed! }), undefined, 'moved into another session it does not open');
    const otherKey = new Sessions({ mac: macUnder(() => randomBytes(32)), now: () => 1_000_000, random: randomBytes });
    assert.equal(otherKey.unseal(read), undefined, 'another key does not open it');
  });
});
