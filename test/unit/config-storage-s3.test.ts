import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig, type WharfConfig } from '../../src/config/index.js';

async function problemsOf(p: Promise<WharfConfig>): Promise<string[]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('configuration was accepted');
}

test('storage.s3 is absent by default: blobs on the filesystem', async () => {
  assert.deepEqual((await loadConfig({ env: {} })).storage, {});
});

test('storage.s3 from YAML and WHARF_STORAGE_S3_* env, with defaults, sizes, durations and the secret file resolved', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-s3-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'secret'), 's3cr3t\n');
  await writeFile(join(dir, 'wharf.yaml'), 'storage:\n  s3:\n    bucket: wharf\n    prefix: prod/\n    accessKeyId: AKIA1\n    secretAccessKeyFile: secret\n    redirectExpiry: 5m\n');
  const c = await loadConfig({ file: 'wharf.yaml', cwd: dir, env: { WHARF_STORAGE_S3_ENDPOINT: 'http://10.0.0.5:8080', WHARF_STORAGE_S3_FORCE_PATH_STYLE: 'true', WHARF_STORAGE_S3_PART_SIZE: '8MiB' } });
  assert.deepEqual(c.storage.s3, {
    endpoint: 'http://10.0.0.5:8080',
    region: 'us-east-1',
    bucket: 'wharf',
    prefix: 'prod/',
    forcePathStyle: true,
    accessKeyId: 'AKIA1',
    secretAccessKeyFile: join(dir, 'secret'),
    partSize: 8 << 20,
    redirect: false,
    redirectExpiry: 300_000,
  });
});

test('storage.s3 settings that cannot work are listed at once', async () => {
  const problems = await problemsOf(
    loadConfig({
      env: {
        WHARF_STORAGE_S3_BUCKET: 'Not_A_Bucket',
        WHARF_STORAGE_S3_ACCESS_KEY_ID: 'AKIA1',
        WHARF_STORAGE_S3_PART_SIZE: '1MiB',
        WHARF_STORAGE_S3_PREFIX: '/prod',
        WHARF_STORAGE_S3_SECRET_ACCESS_KEY_FILE: '/nonexistent/secret',
      },
    }),
  );
  for (const p of [/storage\.s3\.bucket: not a valid bucket name/, /storage\.s3\.partSize: must be between 5MiB and 5GiB/, /storage\.s3\.prefix: must end with \//, /SECRET_ACCESS_KEY_FILE: file \/nonexistent\/secret does not exist/]) {
    assert.ok(problems.some((x) => p.test(x)), `${p} in ${problems.join(' | ')}`);
  }
  const both = await problemsOf(loadConfig({ env: { WHARF_STORAGE_S3_BUCKET: 'wharf', WHARF_STORAGE_S3_ACCESS_KEY_ID: 'a', WHARF_STORAGE_S3_SECRET_ACCESS_KEY: 'b', WHARF_STORAGE_S3_SECRET_ACCESS_KEY_FILE: '/etc/hostname' } }));
  assert.ok(both.some((x) => /set secretAccessKey or secretAccessKeyFile, not both/.test(x)), both.join(' | '));
  const half = await problemsOf(loadConfig({ env: { WHARF_STORAGE_S3_BUCKET: 'wharf', WHARF_STORAGE_S3_SECRET_ACCESS_KEY: 'b' } }));
  assert.ok(half.some((x) => /accessKeyId together with/.test(x)), half.join(' | '));
});
