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
});
