import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Htpasswd, parseHtpasswd } from '../../src/http/auth/htpasswd.js';
import { AccessRules } from '../../src/http/auth/rules.js';
import { bearerChallenge, parseScopes } from '../../src/http/auth/scope.js';
import { TokenSigner } from '../../src/http/auth/tokens.js';
import { LoginLimiter } from '../../src/http/auth/login-limiter.js';
import { tempDir } from '../helpers/tmp.js';

const run = promisify(execFile);

async function htpasswdLine(user: string, password: string, flag = '-B'): Promise<string> {
  return (await run('htpasswd', ['-nb', flag, user, password])).stdout.trim();
}

test('entries made by the real `htpasswd -B` verify; MD5/SHA1 lines are ignored, as in Distribution', async (t) => {
  const dir = await tempDir();
  t.after(dir.cleanup);
  const path = join(dir.path, 'htpasswd');
  const lines = [await htpasswdLine('alice', 'wonder land'), await htpasswdLine('bob', 's3cret:with:colons'), await htpasswdLine('md5', 'x', '-m'), await htpasswdLine('sha', 'x', '-s')];
  await writeFile(path, lines.join('\n') + '\n');
  assert.deepEqual(parseHtpasswd(lines.join('\n')).skipped, ['md5', 'sha']);
  const warnings: string[] = [];
  const h = new Htpasswd(path, { warn: (m) => warnings.push(m) });
  h.load();
  assert.equal(await h.verify('alice', 'wonder land'), true);
  assert.equal(await h.verify('alice', 'wonder land'), true, 'remembered');
  assert.equal(await h.verify('alice', 'wonder'), false);
  assert.equal(await h.verify('bob', 's3cret:with:colons'), true);
  assert.equal(await h.verify('md5', 'x'), false, 'non-bcrypt entries never log in');
  assert.equal(await h.verify('nobody', 'x'), false);
  assert.equal(warnings.length, 1);
});

test('the htpasswd file is re-read when it changes: new users log in, removed ones no longer do', async (t) => {
  const dir = await tempDir();
  t.after(dir.cleanup);
  const path = join(dir.path, 'htpasswd');
  await writeFile(path, (await htpasswdLine('alice', 'a')) + '\n');
  let now = 0;
  const h = new Htpasswd(path, { now: () => now, recheckMs: 1000 });
  h.load();
  assert.equal(await h.verify('alice', 'a'), true);
  await writeFile(path, (await htpasswdLine('carol', 'c')) + '\n');
  await utimes(path, new Date(), new Date(Date.now() + 5000));
  assert.equal(await h.verify('carol', 'c'), false, 'not before the recheck interval');
  now = 1500;
  assert.equal(await h.verify('carol', 'c'), true);
  assert.equal(await h.verify('alice', 'a'), false, 'a remembered login does not outlive its entry');
});

test('an unknown user costs as much as the most expensive user in the file, so probes cannot tell who exists', async (t) => {
  const dir = await tempDir();
  t.after(dir.cleanup);
  const path = join(dir.path, 'htpasswd');
  // A cheap user first and an expensive one (cost 11: 64 times the work of cost 5) made by the real htpasswd.
  const lines = [await htpasswdLine('cheap', 'c'), (await run('htpasswd', ['-nbB', '-C', '11', 'admin', 'a'])).stdout.trim()];
  await writeFile(path, lines.join('\n') + '\n');
  const h = new Htpasswd(path);
  h.load();
  const timed = async (user: string): Promise<number> => {
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = process.hrtime.bigint();
      assert.equal(await h.verify(user, 'wrong'), false);
      runs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return runs.sort((a, b) => a - b)[1]!;
  };
  const real = await timed('admin');
  const unknown = await timed('nobody-' + Date.now());
  // The costs differ 64-fold; a quarter leaves room for a busy machine without letting a cost-5 check pass.
  assert.ok(unknown > real / 4, `unknown user ${unknown.toFixed(1)} ms vs real user ${real.toFixed(1)} ms`);
});

test('rules grant the union of matching rules; anonymous grants reach everyone; patterns are globs', () => {
  const rules = new AccessRules(
    [
      { repositories: ['team/*'], users: ['alice'], actions: ['push'] },
      { repositories: ['**'], users: ['*'], actions: ['pull'] },
      { repositories: ['public/**'], users: ['anonymous'], actions: ['pull'] },
      { repositories: ['ghcr.io/acme/*'], users: ['bob'], actions: ['delete'] },
    ],
    false,
  );
  const set = (...a: string[]) => new Set(a);
  assert.deepEqual(rules.allowed(undefined, ['team/app']), set());
  assert.deepEqual(rules.allowed(undefined, ['public/a/b']), set('pull'));
  assert.deepEqual(rules.allowed('alice', ['team/app']), set('push', 'pull'));
  assert.deepEqual(rules.allowed('alice', ['team/app/sub']), set('pull'), '* stays within one component');
  assert.deepEqual(rules.allowed('bob', ['ghcr.io/acme/tool', 'ghcr.io/acme/tool']), set('pull', 'delete'));
  assert.deepEqual(rules.allowed('bob', ['ghcr.io/acmeX/tool']), set('pull'));
  assert.deepEqual(new AccessRules([], true).allowed(undefined, ['anything']), set('pull'), 'anonymousPull');
});

test('scopes: repeated and space-separated, names with host:port, resource classes, junk skipped', () => {
  assert.deepEqual(parseScopes(['repository:team/app:pull,push', 'repository:localhost:5000/x:pull repository(plugin):p:pull', 'junk', 'registry:catalog:*']), [
    { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
    { type: 'repository', name: 'localhost:5000/x', actions: ['pull'] },
    { type: 'repository', name: 'p', actions: ['pull'] },
    { type: 'registry', name: 'catalog', actions: ['*'] },
  ]);
  assert.equal(bearerChallenge('http://h/token', 'wharf', 'repository:a:pull', 'insufficient_scope'), 'Bearer realm="http://h/token",service="wharf",scope="repository:a:pull",error="insufficient_scope"');
});

test('tokens: verified until they expire (injected clock), only with the same secret, issuer and service', async () => {
  let now = Date.parse('2030-01-01T00:00:00Z');
  const key = new Uint8Array(32).fill(7);
  const signer = new TokenSigner({ issuer: 'wharf', service: 'wharf', expiryMs: 300_000, secret: () => key, now: () => now });
  const access = [{ type: 'repository' as const, name: 'team/app', actions: ['pull'] }];
  const t = await signer.issue('alice', access);
  assert.equal(t.expiresIn, 300);
  assert.equal(t.issuedAt, '2030-01-01T00:00:00.000Z');
  assert.deepEqual(await signer.verify(t.token), { user: 'alice', access });
  now += 299_000;
  assert.ok(await signer.verify(t.token));
  now += 2_000;
  assert.equal(await signer.verify(t.token), undefined, 'expired');
  now -= 2_000;
  const other = new TokenSigner({ issuer: 'wharf', service: 'wharf', expiryMs: 300_000, secret: () => new Uint8Array(32).fill(8), now: () => now });
  assert.equal(await other.verify(t.token), undefined, 'other secret');
  const otherService = new TokenSigner({ issuer: 'wharf', service: 'elsewhere', expiryMs: 300_000, secret: () => key, now: () => now });
  assert.equal(await otherService.verify(t.token), undefined, 'other audience');
  assert.deepEqual(await signer.verify((await signer.issue(undefined, [])).token), { user: undefined, access: [] }, 'anonymous token');
});

test('config: auth with nobody to log in as, or a token both inline and in a file, is refused at load', async () => {
  const { loadConfig, ConfigError } = await import('../../src/config/index.js');
  await assert.rejects(loadConfig({ env: { WHARF_AUTH_ANONYMOUS_PULL: 'false' } }), (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('auth: set htpasswd or tokens')));
  await assert.rejects(
    loadConfig({ env: { WHARF_AUTH_TOKENS_0_USER: 'ci', WHARF_AUTH_TOKENS_0_TOKEN: 't', WHARF_AUTH_TOKENS_0_TOKEN_FILE: '/etc/hostname' } }),
    (e: unknown) => e instanceof ConfigError && e.problems.includes('auth.tokens.0: set exactly one of token and tokenFile'),
  );
  const ok = await loadConfig({ env: { WHARF_AUTH_TOKENS_0_USER: 'ci', WHARF_AUTH_TOKENS_0_TOKEN: 't' } });
  assert.deepEqual(ok.auth?.token, { service: 'wharf', issuer: 'wharf', expiry: 300_000 });
  assert.equal(ok.auth?.anonymousPull, true);
});

test('failed logins: a burst per address, then refused until the bucket refills; other addresses unaffected', () => {
  let now = 0;
  const l = new LoginLimiter({ burst: 3, refillMs: 1000, maxAddresses: 2, now: () => now });
  for (let i = 0; i < 3; i++) {
    assert.equal(l.blockedFor('10.0.0.1'), 0, `attempt ${i + 1} allowed`);
    l.failed('10.0.0.1');
  }
  assert.equal(l.blockedFor('10.0.0.1'), 1000, 'the fourth waits for one refill');
  assert.equal(l.blockedFor('10.0.0.2'), 0, 'another address is not held back');
  now += 999;
  assert.equal(l.blockedFor('10.0.0.1'), 1);
  now += 1;
  assert.equal(l.blockedFor('10.0.0.1'), 0, 'one attempt again after a refill');
  l.failed('10.0.0.1');
  assert.ok(l.blockedFor('10.0.0.1') > 0);
  l.failed('10.0.0.2');
  l.failed('10.0.0.3'); // over maxAddresses: the least recently failing address is forgotten
  assert.equal(l.blockedFor('10.0.0.1'), 0, 'forgotten, not blocked');
});
