import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/index.js';

// ui.admins: who may run gc and verify from the web UI (README "Web UI").
test('ui.admins names users of auth: from YAML or env, absent by default, refused without an auth section', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'with-auth.yaml');
  await writeFile(file, 'upstreams: []\nauth: { tokens: [{ user: ops, token: t0123456789 }] }\nui: { admins: [ops] }\n');
  assert.deepEqual((await loadConfig({ file, env: {} })).ui.admins, ['ops']);
  assert.deepEqual((await loadConfig({ file, env: { WHARF_UI_ADMINS_0: 'oncall' } })).ui.admins, ['oncall']);
  assert.equal((await loadConfig({ env: {} })).ui.admins, undefined);

  const bare = join(dir, 'open.yaml');
  await writeFile(bare, 'upstreams: []\nui: { admins: [ops] }\n');
  await assert.rejects(loadConfig({ file: bare, env: {} }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.problems, ['ui.admins: names users of auth, which is not configured (without auth, callers on this host may run gc and verify)']);
    return true;
  });
});
