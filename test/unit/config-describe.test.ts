import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeOptions, loadConfig } from '../../src/config/index.js';

test('describeOptions lists every option once, each with a description', () => {
  const options = describeOptions();
  const keys = options.map((o) => o.key);
  assert.equal(new Set(keys).size, keys.length);
  for (const o of options) assert.ok(o.description.length > 0 && !o.description.includes('|'), o.key);
  for (const key of ['listen', 'dataDir', 'redis.url', 'upstreams', 'upstreams[].url', 'cache.maxSize', 'push.overlay[]', 'log.level']) {
    assert.ok(keys.includes(key), key);
  }
  const byKey = new Map(options.map((o) => [o.key, o]));
  assert.deepEqual(byKey.get('cache.maxSize'), {
    key: 'cache.maxSize', env: 'WHARF_CACHE_MAX_SIZE', default: 'unbounded', description: 'bytes of mirrored content kept (eviction above)',
  });
  assert.equal(byKey.get('upstreams[].url')?.env, 'WHARF_UPSTREAMS_<n>_URL');
  assert.equal(byKey.get('push.overlay[]')?.env, 'WHARF_PUSH_OVERLAY_<n>');
  assert.equal(byKey.get('server.headersTimeout')?.default, '80s');
});

test('every documented env name is accepted by the loader (no typo-safety false alarms)', async () => {
  const env: Record<string, string> = {};
  for (const o of describeOptions()) if (o.env !== '') env[o.env.replaceAll('<n>', '0')] = '';
  // empty values are ignored, so only the names are checked
  await loadConfig({ env });
});

test('documented defaults are the defaults the loader applies', async () => {
  const byKey = new Map(describeOptions().map((o) => [o.key, o.default]));
  const env: Record<string, string> = {};
  for (const o of describeOptions()) {
    // lists (server.trustedProxies[]) are set item by item, not from their documented default `[]`
    if (/^(cache|server|limits|uploads|health)\.|^listen$|^log\.level$/.test(o.key) && o.default !== 'unbounded' && !o.key.endsWith('[]')) {
      env[o.env] = o.default;
    }
  }
  const fromDocs = await loadConfig({ env, cwd: '/' });
  const plain = await loadConfig({ env: {}, cwd: '/' });
  assert.deepEqual(fromDocs, plain);
  assert.equal(byKey.get('dataDir'), './data');
});
