import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { Sessions, cookieValue } from '../../src/http/api/session.js';

const key = randomBytes(32);
const mac = (k: Buffer) => (label: string, data: string) => createHmac('sha256', k).update(`${label}\0${data}`).digest();

describe('UI sessions', () => {
  it('reads back what it issued until it expires; the CSRF token is bound to the session', () => {
    let now = 1_000_000;
    const s = new Sessions({ mac: mac(key), now: () => now, random: randomBytes, ttlMs: 60_000 });
    const a = s.issue('alice');
    const b = s.issue('alice');
    const read = s.read(a.cookie);
    assert.equal(read?.user, 'alice');
    assert.equal(read?.csrf, a.session.csrf);
    assert.notEqual(a.session.csrf, b.session.csrf, 'each session its own CSRF token');
    assert.equal(s.csrfMatches(read!, a.session.csrf), true);
    assert.equal(s.csrfMatches(read!, b.session.csrf), false);
    now += 60_000;
    assert.equal(s.read(a.cookie), undefined, 'expired');
  });

  it('refuses a changed payload, another key, and junk', () => {
    const s = new Sessions({ mac: mac(key), now: () => 0, random: randomBytes });
    const { cookie } = s.issue('reader');
    const [payload, sig] = cookie.split('.');
    const changed = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), u: 'admin' })).toString('base64url');
    assert.equal(s.read(`${changed}.${sig}`), undefined);
    assert.equal(new Sessions({ mac: mac(randomBytes(32)), now: () => 0, random: randomBytes }).read(cookie), undefined, 'another replica key');
    for (const junk of ['', '.', 'x.y', `${payload}.`, `.${sig}`, `${payload}.${sig}x`]) assert.equal(s.read(junk), undefined, junk);
  });

  it('finds a cookie by exact name', () => {
    assert.equal(cookieValue('a=1; wharf_session=abc.def; b=2', 'wharf_session'), 'abc.def');
    assert.equal(cookieValue('xwharf_session=1', 'wharf_session'), undefined);
  });

  it('a revoked session reads as none until it would have expired; an unreadable revocation list fails closed', async () => {
    let now = 5_000;
    const revoked = new Map<string, number>();
    let down = false;
    const s = new Sessions({
      mac: mac(key),
      now: () => now,
      random: randomBytes,
      ttlMs: 60_000,
      revocations: {
        // In memory: the interface the metadata store implements (getState/setState with a TTL).
        revoke: async (sid, ttlMs) => void revoked.set(sid, now + ttlMs),
        revoked: async (sid) => {
          if (down) throw new Error('metadata store unavailable');
          return (revoked.get(sid) ?? 0) > now;
        },
      },
    });
    const a = s.issue('alice');
    const b = s.issue('alice');
    assert.equal((await s.readLive(a.cookie))?.user, 'alice');
    assert.equal(await s.revoke(a.session), true);
    assert.equal(await s.readLive(a.cookie), undefined, 'logged out');
    assert.equal(s.read(a.cookie)?.user, 'alice', 'the signature alone still checks: only readLive knows about logouts');
    assert.equal((await s.readLive(b.cookie))?.user, 'alice', 'another session of the same user stays');
    assert.equal(revoked.get(a.session.sid), a.session.expires, 'remembered exactly until the session would expire');
    down = true;
    assert.equal(await s.readLive(b.cookie), undefined, 'a revocation list that cannot be read counts as revoked');
  });
});
