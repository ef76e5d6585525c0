import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { test } from 'node:test';
import { resolveCredentials } from '../../src/upstream/auth/credentials.js';
import { expiryOf, TokenCache } from '../../src/upstream/auth/token-cache.js';

test('credentials never show their secret in JSON, inspect or string form', () => {
  const c = resolveCredentials('hub', { username: 'me', password: 's3cr3t-value' });
  assert.ok(c);
  assert.equal(c.password, 's3cr3t-value');
  for (const shown of [JSON.stringify({ c }), inspect(c), inspect({ deep: { c } }), String(c), `${c}`]) {
    assert.ok(!shown.includes('s3cr3t-value'), shown);
  }
  assert.equal(c.basicHeader(), `Basic ${Buffer.from('me:s3cr3t-value').toString('base64')}`);
});

test('resolveCredentials: token wins, files are read once and trimmed, incomplete config is an error', () => {
  const reads: string[] = [];
  const files: Record<string, string> = { '/run/pw': 'from-file\n', '/run/tok': '  ghp_abc \n' };
  const read = (p: string): string => {
    reads.push(p);
    const v = files[p];
    if (v === undefined) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    return v;
  };
  const tok = resolveCredentials('ghcr', { tokenFile: '/run/tok' }, read);
  assert.deepEqual([tok?.username, tok?.password, tok?.kind], ['token', 'ghp_abc', 'token']);
  const named = resolveCredentials('ghcr', { username: 'bob', token: 'ghp_x', password: 'ignored' }, read);
  assert.deepEqual([named?.username, named?.password, named?.kind], ['bob', 'ghp_x', 'token']);
  const pw = resolveCredentials('hub', { username: 'me', passwordFile: '/run/pw' }, read);
  assert.equal(pw?.password, 'from-file');
  assert.deepEqual(reads, ['/run/tok', '/run/pw']);
  assert.equal(resolveCredentials('hub', undefined, read), undefined);
  assert.equal(resolveCredentials('hub', {}, read), undefined);
  assert.throws(() => resolveCredentials('hub', { username: 'me' }, read), /hub.*without a password/);
  assert.throws(() => resolveCredentials('hub', { password: 'x' }, read), /hub.*without a username/);
  assert.throws(() => resolveCredentials('hub', { username: 'me', passwordFile: '/missing' }, read), /hub: cannot read password file \/missing \(ENOENT\)/);
});

test('expiryOf: expires_in minus 10 % or at least 5 s; 60 s when absent', () => {
  assert.equal(expiryOf(0, 300), 270_000);
  assert.equal(expiryOf(0, 30), 25_000);
  assert.equal(expiryOf(0, undefined), 54_000);
  assert.equal(expiryOf(0, 0), 54_000);
  assert.equal(expiryOf(0, 3), 0);
});

test('TokenCache: one fetch per scope for concurrent callers, reuse until expiry', async () => {
  let t = 0;
  const cache = new TokenCache(() => t);
  let fetches = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fetch = async () => {
    fetches++;
    await gate;
    return { token: `tok${fetches}`, expiresAt: t + 1000 };
  };
  const waiting = Promise.all([cache.get('a', fetch), cache.get('a', fetch), cache.get('a', fetch)]);
  release();
  assert.deepEqual(await waiting, ['tok1', 'tok1', 'tok1']);
  assert.equal(fetches, 1);
  t = 999;
  assert.equal(await cache.get('a', fetch), 'tok1');
  t = 1000;
  assert.equal(await cache.get('a', fetch), 'tok2');
  assert.equal(await cache.get('b', fetch), 'tok3', 'scopes are separate');
});

test('TokenCache: invalidate drops the token and a fetch already under way does not bring it back', async () => {
  const cache = new TokenCache(() => 0);
  let n = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow = cache.get('s', async () => {
    await gate;
    return { token: `old${++n}`, expiresAt: 10 };
  });
  cache.invalidate('s');
  release();
  assert.equal(await slow, 'old1', 'the caller that asked still gets its answer');
  assert.equal(await cache.get('s', async () => ({ token: 'new', expiresAt: 10 })), 'new');
});

test('TokenCache: a failed fetch is not cached', async () => {
  const cache = new TokenCache(() => 0);
  await assert.rejects(cache.get('s', async () => Promise.reject(new Error('down'))), /down/);
  assert.equal(await cache.get('s', async () => ({ token: 'ok', expiresAt: 10 })), 'ok');
});
