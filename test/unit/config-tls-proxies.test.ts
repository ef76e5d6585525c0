import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { checkingInterval } from '../../src/listener.js';

async function dirWith(t: TestContext, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

async function problems(p: Promise<unknown>): Promise<string[]> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
  return e.problems;
}

test('tls: absent means plain HTTP; cert and key from env, resolved against cwd', async (t) => {
  assert.equal((await loadConfig({ env: {} })).tls, undefined);
  const dir = await dirWith(t, { 'cert.pem': 'x', 'key.pem': 'y' });
  const c = await loadConfig({ env: { WHARF_TLS_CERT: 'cert.pem', WHARF_TLS_KEY: 'key.pem' }, cwd: dir });
  assert.deepEqual(c.tls, { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') });
});

test('tls: a cert without a key, and a missing file, are named by their source', async (t) => {
  const dir = await dirWith(t, { 'cert.pem': 'x', 'wharf.yaml': 'tls: { cert: cert.pem }\n' });
  assert.deepEqual(await problems(loadConfig({ file: join(dir, 'wharf.yaml'), env: {}, cwd: dir })), ['tls.key: required']);
  const missing = await problems(loadConfig({ env: { WHARF_TLS_CERT: 'cert.pem', WHARF_TLS_KEY: 'nope.pem' }, cwd: dir }));
  assert.equal(missing.length, 1);
  assert.match(missing[0] as string, /^WHARF_TLS_KEY: file .*nope\.pem does not exist$/);
});

test('server.trustedProxies: IPs and CIDR ranges, default none, bad entries listed', async (t) => {
  assert.deepEqual((await loadConfig({ env: {} })).server.trustedProxies, []);
  const c = await loadConfig({ env: { WHARF_SERVER_TRUSTED_PROXIES_0: '10.0.0.0/8', WHARF_SERVER_TRUSTED_PROXIES_1: '::ffff:192.0.2.7', WHARF_SERVER_TRUSTED_PROXIES_2: 'FD00::/8' } });
  assert.deepEqual(c.server.trustedProxies, ['10.0.0.0/8', '192.0.2.7', 'fd00::/8']);
  const dir = await dirWith(t, { 'wharf.yaml': 'server: { trustedProxies: [proxy.local, 10.0.0.0/33, 1.2.3.4/8/1] }\n' });
  const found = await problems(loadConfig({ file: join(dir, 'wharf.yaml'), env: {} }));
  assert.equal(found.length, 3, found.join('\n'));
  for (const [i, p] of found.entries()) assert.match(p, new RegExp(`^server\\.trustedProxies\\.${i}: must be an IP address or CIDR range`));
});

test('header deadlines are checked at a tenth of headersTimeout, between 100 ms and Node\'s 30 s default', () => {
  assert.equal(checkingInterval(80_000), 8000);
  assert.equal(checkingInterval(1000), 100);
  assert.equal(checkingInterval(200), 100);
  assert.equal(checkingInterval(3_600_000), 30_000);
});
