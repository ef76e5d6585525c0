import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/index.js';

async function setup(t: TestContext, yaml: string): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'portus.crt'), '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
  await writeFile(join(dir, 'htpasswd'), 'alice:$2y$05$abcdefghijklmnopqrstuu\n');
  const file = join(dir, 'wharf.yaml');
  await writeFile(file, yaml);
  return { dir, file };
}

async function problems(t: TestContext, yaml: string): Promise<string[]> {
  const { dir, file } = await setup(t, yaml);
  try {
    await loadConfig({ file, env: {}, cwd: dir });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  return [];
}

const EXTERNAL = `upstreams: []
auth:
  token:
    realm: https://portus.example/v2/token
    service: registry.example:5000
    issuer: portus.example
    rootcertbundle: portus.crt
`;

test("Distribution's auth.token block is accepted as is, the bundle path resolved", async (t) => {
  const { dir, file } = await setup(t, EXTERNAL);
  const c = await loadConfig({ file, env: {}, cwd: dir });
  assert.equal(c.auth?.token.rootcertbundle, join(dir, 'portus.crt'));
  assert.equal(c.auth?.token.realm, 'https://portus.example/v2/token');
  assert.deepEqual(await problems(t, `${EXTERNAL}    signingalgorithms: [RS256, EdDSA]\n`), []);
});

test('external mode refuses wharf’s own users and rules, and needs a realm', async (t) => {
  const mixed = await problems(t, `${EXTERNAL}  htpasswd: htpasswd\n  rules: [{ repositories: ['**'], users: ['*'], actions: [pull] }]\n`);
  assert.equal(mixed.length, 1, mixed.join('\n'));
  assert.match(mixed[0]!, /external token service.*remove auth\.htpasswd, auth\.rules/);
  const noRealm = await problems(t, EXTERNAL.replace(/ {4}realm:.*\n/, ''));
  assert.deepEqual(noRealm.map((p) => p.split(':')[0]), ['auth.token.realm']);
  assert.ok((await problems(t, `${EXTERNAL}    signingalgorithms: [HS256]\n`)).some((p) => /HS256/.test(p)), 'HMAC is no signing algorithm here');
  const missing = await problems(t, EXTERNAL.replace('portus.crt', 'nope.crt'));
  assert.ok(missing.some((p) => p.startsWith('auth.token.rootcertbundle') && p.includes('does not exist')), missing.join('\n'));
});
