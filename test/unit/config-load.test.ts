import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ConfigError, ConfigFileError, loadConfig, type WharfConfig } from '../../src/config/index.js';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function withFile(t: TestContext, yaml: string): Promise<{ dir: string; file: string }> {
  const dir = await tempDir(t);
  const file = join(dir, 'wharf.yaml');
  await writeFile(file, yaml);
  return { dir, file };
}

async function problemsOf(p: Promise<WharfConfig>): Promise<string[]> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('configuration was accepted');
}

test('defaults: docker.io as the only, default upstream, and the documented values', async () => {
  const c = await loadConfig({ env: {}, cwd: '/srv/wharf' });
  assert.equal(c.listen, '0.0.0.0:5000');
  assert.equal(c.dataDir, '/srv/wharf/data');
  assert.equal(c.redis, undefined);
  assert.equal(c.upstreams.length, 1);
  const [hub] = c.upstreams;
  assert.ok(hub);
  assert.equal(hub.name, 'docker.io');
  assert.equal(hub.url, 'https://registry-1.docker.io');
  assert.equal(hub.default, true);
  assert.equal(hub.libraryPrefix, true);
  assert.deepEqual(hub.aliases, ['docker.io', 'index.docker.io', 'registry-1.docker.io']);
  assert.ok(hub.redirectHosts.includes('*.r2.cloudflarestorage.com'));
  assert.equal(hub.redirectPublicHttps, true);
  assert.equal(hub.tagFreshness, 5 * 60_000);
  assert.equal(hub.notFoundTtl, 30_000);
  assert.equal(hub.maxConnections, 16);
  assert.equal(hub.maxConcurrentFetches, 8);
  assert.deepEqual(hub.timeouts, { connect: 10_000, headers: 30_000, body: 60_000 });
  assert.equal(hub.tls.insecureSkipVerify, false);
  assert.equal(hub.credentials, undefined);
  assert.deepEqual(c.cache, {
    highWatermark: 0.95, lowWatermark: 0.85, evictionInterval: 30_000, fetchTimeout: 30 * 60_000, resumeAttempts: 3, directWrites: true,
  });
  assert.deepEqual(c.push, { overlay: [], immutableTags: [] });
  assert.deepEqual(c.metrics, {});
  assert.equal(c.log.level, 'info');
  assert.deepEqual(c.limits, { maxManifestBytes: 4 * 2 ** 20, maxBlobBytes: 64 * 2 ** 30, maxUpstreamTagPages: 100, maxUpstreamTags: 100_000 });
  assert.deepEqual(c.server, { keepAliveTimeout: 75_000, headersTimeout: 80_000, idleTimeout: 300_000, drainTimeout: 30_000, trustedProxies: [] });
  assert.deepEqual(c.uploads, { expiry: 24 * 3_600_000 });
  assert.deepEqual(c.health, { minFreeBytes: 2 ** 30 });
  assert.equal(c.advertiseUrl, undefined);
  assert.deepEqual(c.admin, {});
});

test('YAML file values replace defaults; relative dataDir resolves against cwd', async (t) => {
  const { dir, file } = await withFile(t, `
listen: 127.0.0.1:5055
dataDir: cache
redis: { url: redis://127.0.0.1:6379/2 }
upstreams:
  - name: docker.io
    url: https://registry-1.docker.io
    tagFreshness: 1h
  - { name: local, url: "http://127.0.0.1:5001/" }
cache: { maxSize: 200GiB, highWatermark: 0.9, lowWatermark: 0.5 }
push: { overlay: ["library/*"] }
metrics: { listen: "0.0.0.0:9102" }
log: { level: debug }
`);
  const c = await loadConfig({ file, env: {}, cwd: dir });
  assert.equal(c.listen, '127.0.0.1:5055');
  assert.equal(c.dataDir, join(dir, 'cache'));
  assert.deepEqual(c.redis, { url: 'redis://127.0.0.1:6379/2', keyPrefix: 'wharf:', outageGrace: 15 * 60_000, snapshotInterval: 30_000 });
  assert.equal(c.upstreams[0]?.tagFreshness, 3_600_000);
  assert.equal(c.upstreams[0]?.default, true, 'docker.io is the default when several are configured');
  assert.deepEqual(
    { ...c.upstreams[1] },
    {
      name: 'local', url: 'http://127.0.0.1:5001', default: false, aliases: ['127.0.0.1:5001'], libraryPrefix: false,
      tagFreshness: 300_000, notFoundTtl: 30_000, quotaProbeInterval: 30_000, maxConnections: 16, maxConcurrentFetches: 8, prefetch: 3,
      timeouts: { connect: 10_000, headers: 30_000, body: 60_000 }, tls: { insecureSkipVerify: false },
      redirectHosts: [], redirectPublicHttps: false, tokenRealmHosts: [],
    },
  );
  assert.equal(c.cache.maxSize, 200 * 2 ** 30);
  assert.equal(c.cache.lowWatermark, 0.5);
  assert.deepEqual(c.push.overlay, ['library/*']);
  assert.equal(c.metrics.listen, '0.0.0.0:9102');
  assert.equal(c.log.level, 'debug');
});

test('WHARF_CONFIG names the file when no file is given', async (t) => {
  const { dir, file } = await withFile(t, 'listen: 127.0.0.1:6000\n');
  const c = await loadConfig({ env: { WHARF_CONFIG: file }, cwd: dir });
  assert.equal(c.listen, '127.0.0.1:6000');
});

test('env overrides win over the file: scalars, nested keys and list items', async (t) => {
  const { dir, file } = await withFile(t, `
listen: 127.0.0.1:5055
cache: { maxSize: 10GiB }
upstreams:
  - name: docker.io
  - { name: ghcr.io }
push: { overlay: ["library/*"] }
`);
  const c = await loadConfig({
    file,
    cwd: dir,
    env: {
      WHARF_LISTEN: '0.0.0.0:7000',
      WHARF_CACHE_MAX_SIZE: '50GiB',
      WHARF_CACHE_LOW_WATERMARK: '0.5',
      WHARF_LOG_LEVEL: 'warn',
      WHARF_REDIS_URL: 'rediss://cache:6380',
      WHARF_REDIS_KEY_PREFIX: 'mirror:',
      WHARF_UPSTREAMS_0_CREDENTIALS_USERNAME: 'me',
      WHARF_UPSTREAMS_0_CREDENTIALS_PASSWORD: 'secret',
      WHARF_UPSTREAMS_1_TAG_FRESHNESS: '30',
      WHARF_UPSTREAMS_1_TLS_INSECURE_SKIP_VERIFY: 'true',
      WHARF_UPSTREAMS_2_URL: 'http://127.0.0.1:5001',
      WHARF_PUSH_OVERLAY_1: 'team/*',
      WHARF_SERVER_IDLE_TIMEOUT: '90s',
      WHARF_ADMIN_USERNAME: '',
      PATH: '/usr/bin',
    },
  });
  assert.equal(c.listen, '0.0.0.0:7000');
  assert.equal(c.cache.maxSize, 50 * 2 ** 30);
  assert.equal(c.cache.lowWatermark, 0.5);
  assert.equal(c.log.level, 'warn');
  assert.deepEqual(c.redis, { url: 'rediss://cache:6380', keyPrefix: 'mirror:', outageGrace: 15 * 60_000, snapshotInterval: 30_000 });
  assert.deepEqual(c.upstreams[0]?.credentials, { username: 'me', password: 'secret' });
  assert.equal(c.upstreams[1]?.tagFreshness, 30_000, 'plain numbers are seconds');
  assert.equal(c.upstreams[1]?.tls.insecureSkipVerify, true);
  assert.equal(c.upstreams[2]?.name, '127.0.0.1:5001', 'an upstream added by env is named after its host');
  assert.deepEqual(c.push.overlay, ['library/*', 'team/*']);
  assert.equal(c.server.idleTimeout, 90_000);
  assert.deepEqual(c.admin, {}, 'an empty variable counts as unset');
});

test('env credentials apply to the built-in docker.io upstream when no file lists upstreams', async () => {
  const c = await loadConfig({
    env: { WHARF_UPSTREAMS_0_CREDENTIALS_USERNAME: 'me', WHARF_UPSTREAMS_0_CREDENTIALS_PASSWORD: 'pat' },
  });
  assert.equal(c.upstreams.length, 1);
  assert.equal(c.upstreams[0]?.name, 'docker.io');
  assert.deepEqual(c.upstreams[0]?.credentials, { username: 'me', password: 'pat' });
  assert.ok((await problemsOf(loadConfig({ env: { WHARF_UPSTREAMS_0_CREDENTIALS_USERNAME: 'me' } })))
    .includes('upstreams.0.credentials: username needs password or passwordFile'));
});

test('flags (overrides) win over env and file, and problems name the flag', async (t) => {
  const { dir, file } = await withFile(t, 'listen: 127.0.0.1:5055\ndataDir: /var/lib/a\n');
  const env = { WHARF_LISTEN: '127.0.0.1:6000', WHARF_DATA_DIR: '/var/lib/b' };
  const c = await loadConfig({
    file, env, cwd: dir,
    overrides: [
      { path: 'listen', value: '127.0.0.1:7000', source: '--listen' },
      { path: 'dataDir', value: 'c', source: '--data-dir' },
    ],
  });
  assert.equal(c.listen, '127.0.0.1:7000');
  assert.equal(c.dataDir, join(dir, 'c'));
  const problems = await problemsOf(loadConfig({ env, overrides: [{ path: 'listen', value: 'x:99999', source: '--listen' }] }));
  assert.deepEqual(problems, ['--listen: must be host:port with port 0-65535, got "x:99999"']);
});

test('every problem of a file is listed at once, with its path', async (t) => {
  const { dir, file } = await withFile(t, `
listen: localhost
upstreams:
  - { name: docker.io }
  - { name: mine, url: "ftp://example.com" }
cache: { maxSize: 12XB }
`);
  const problems = await problemsOf(loadConfig({ file, env: { WHARF_SERVER_DRAIN_TIMEOUT: 'soon' }, cwd: dir }));
  assert.deepEqual(problems, [
    'listen: must be host:port with port 0-65535, got "localhost"',
    'cache.maxSize: invalid size "12XB" (use e.g. 512MiB, 50GiB, 200GB or plain bytes)',
    'WHARF_SERVER_DRAIN_TIMEOUT: invalid duration "soon" (use e.g. 500ms, 30s, 5m, 2h, 7d)',
    'upstreams.1.url: must be an http(s) URL',
  ]);
});

test('unknown keys and unknown WHARF_* variables are problems, with a suggestion', async (t) => {
  const { dir, file } = await withFile(t, `
listn: 0.0.0.0:5000
cache: { maxSzie: 1GiB }
upstreams:
  - { name: ghcr.io, tagFresh: 1m }
`);
  const problems = await problemsOf(
    loadConfig({ file, cwd: dir, env: { WHARF_CACHE_MAX_SZIE: '1GiB', WHARF_UPSTREAMS_0_URLL: 'https://x', WHARF_CONFIG: 'ignored' } }),
  );
  assert.deepEqual(problems, [
    'WHARF_CACHE_MAX_SZIE: unknown variable (did you mean WHARF_CACHE_MAX_SIZE?)',
    'WHARF_UPSTREAMS_0_URLL: unknown variable (did you mean WHARF_UPSTREAMS_<n>_URL?)',
    'listn: unknown option (did you mean listen?)',
    'cache.maxSzie: unknown option (did you mean maxSize?)',
    'upstreams.0.tagFresh: unknown option (did you mean tagFreshness?)',
  ]);
});

test('WHARF_CONFIG is not an override, and non-scalar variables are refused', async () => {
  const problems = await problemsOf(loadConfig({ env: { WHARF_CACHE: '1GiB', WHARF_UPSTREAMS_0: 'ghcr.io' } }));
  assert.equal(problems.length, 2);
  assert.match(problems[0] ?? '', /^WHARF_CACHE: only single values/);
  assert.match(problems[1] ?? '', /^WHARF_UPSTREAMS_0: only single values/);
});

test('a configured ghcr.io takes the ghcr.io profile as defaults, explicit values win', async (t) => {
  const { dir, file } = await withFile(t, `
upstreams:
  - { name: ghcr.io }
  - { name: quay, url: https://quay.io, redirectPublicHttps: false }
  - { name: oracle }
  - { url: https://ghcr.example.com }
`);
  const c = await loadConfig({ file, env: {}, cwd: dir });
  const [ghcr, quay, oracle, other] = c.upstreams;
  assert.equal(ghcr?.url, 'https://ghcr.io');
  assert.deepEqual(ghcr?.aliases, ['ghcr.io']);
  assert.deepEqual(ghcr?.redirectHosts, ['pkg-containers.githubusercontent.com', '*.githubusercontent.com']);
  assert.equal(ghcr?.redirectPublicHttps, true);
  assert.equal(ghcr?.libraryPrefix, false);
  assert.equal(quay?.name, 'quay');
  assert.ok(quay?.redirectHosts.includes('cdn.quay.io'));
  assert.equal(quay?.redirectPublicHttps, false);
  assert.equal(oracle?.url, 'https://container-registry.oracle.com');
  assert.deepEqual(oracle?.aliases, ['container-registry.oracle.com']);
  assert.deepEqual(oracle?.redirectHosts, ['*.oraclecloud.com']);
  assert.equal(other?.name, 'ghcr.example.com');
  assert.equal(other?.redirectPublicHttps, false, 'user-defined upstreams do not follow public redirects by default');
  assert.deepEqual(other?.redirectHosts, []);
  assert.deepEqual(c.upstreams.map((u) => u.default), [false, false, false, false], 'no docker.io, several upstreams → no default');
});

test('only docker.io is enabled by default; upstreams: [] means none', async (t) => {
  const byDefault = await loadConfig({ env: {} });
  assert.deepEqual(byDefault.upstreams.map((u) => u.name), ['docker.io']);
  const { dir, file } = await withFile(t, 'upstreams: []\n');
  const plain = await loadConfig({ file, env: {}, cwd: dir });
  assert.deepEqual(plain.upstreams, []);
});

test('default upstream: the only one, an explicit one, never two', async (t) => {
  const one = await withFile(t, 'upstreams: [{ name: ghcr.io }]\n');
  assert.equal((await loadConfig({ file: one.file, env: {} })).upstreams[0]?.default, true);
  const explicit = await withFile(t, 'upstreams: [{ name: docker.io }, { name: ghcr.io, default: true }]\n');
  assert.deepEqual((await loadConfig({ file: explicit.file, env: {} })).upstreams.map((u) => u.default), [false, true]);
  const two = await withFile(t, 'upstreams: [{ name: docker.io, default: true }, { name: ghcr.io, default: true }]\n');
  assert.deepEqual(await problemsOf(loadConfig({ file: two.file, env: {} })), [
    'upstreams: only one upstream may be default: true (found docker.io, ghcr.io)',
  ]);
});

test('duplicate upstream names and hosts are problems', async (t) => {
  const { file } = await withFile(t, `
upstreams:
  - { name: docker.io }
  - { name: hub, url: "https://index.docker.io" }
  - { name: hub, url: "http://127.0.0.1:5001" }
`);
  assert.deepEqual(await problemsOf(loadConfig({ file, env: {} })), [
    'upstreams.1.aliases: host "docker.io" is already answered by upstreams.0',
    'upstreams.1.aliases: host "index.docker.io" is already answered by upstreams.0',
    'upstreams.1.aliases: host "registry-1.docker.io" is already answered by upstreams.0',
    'upstreams.2.name: "hub" is already used by upstreams.1',
  ]);
});

test('credential and CA files must exist and be readable; relative paths resolve against cwd', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'hub-password'), 'secret\n');
  const ok = await loadConfig({
    cwd: dir,
    env: { WHARF_UPSTREAMS_0_CREDENTIALS_USERNAME: 'me', WHARF_UPSTREAMS_0_CREDENTIALS_PASSWORD_FILE: 'hub-password' },
  });
  assert.equal(ok.upstreams[0]?.credentials?.passwordFile, join(dir, 'hub-password'));

  const { file } = await withFile(t, `
upstreams:
  - name: docker.io
    credentials: { username: me, passwordFile: /run/secrets/missing }
    tls: { caFile: ca.pem }
`);
  assert.deepEqual(await problemsOf(loadConfig({ file, env: {}, cwd: dir })), [
    'upstreams.0.credentials.passwordFile: file /run/secrets/missing does not exist',
    `upstreams.0.tls.caFile: file ${join(dir, 'ca.pem')} does not exist`,
  ]);
});

test('cross-field rules: watermarks, timeouts, user/password pairs, redis url', async (t) => {
  const { file } = await withFile(t, `
cache: { highWatermark: 0.8, lowWatermark: 0.9 }
server: { keepAliveTimeout: 80s, headersTimeout: 80s }
metrics: { username: prom }
admin: { password: x }
redis: { url: "http://127.0.0.1:6379" }
upstreams:
  - name: docker.io
    credentials: { username: me, password: a, passwordFile: /etc/hostname }
`);
  assert.deepEqual(await problemsOf(loadConfig({ file, env: {} })), [
    'redis.url: must be a redis:// or rediss:// URL',
    'upstreams.0.credentials: set password or passwordFile, not both',
    'cache.lowWatermark: must be below cache.highWatermark (0.9 >= 0.8)',
    'server.headersTimeout: must be longer than server.keepAliveTimeout',
    'metrics: set both username and password, or neither',
    'admin: set both username and password, or neither',
  ]);
});

test('YAML syntax errors are problems with a line; a missing file is a ConfigFileError', async (t) => {
  const { file } = await withFile(t, 'listen: [\n');
  const problems = await problemsOf(loadConfig({ file, env: {} }));
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? '', /wharf\.yaml:2:1: Flow sequence in block collection must be sufficiently indented and end with a \]$/);
  await assert.rejects(loadConfig({ file: '/nonexistent/wharf.yaml', env: {} }), (e: unknown) =>
    e instanceof ConfigFileError && e.message === 'cannot read config file /nonexistent/wharf.yaml: no such file');
});

test('an unreadable credentials file is a problem', { skip: process.getuid?.() === 0 ? 'root reads every file' : false }, async (t) => {
  const dir = await tempDir(t);
  const secret = join(dir, 'secret');
  await writeFile(secret, 'x');
  await chmod(secret, 0o000);
  const problems = await problemsOf(loadConfig({
    env: { WHARF_UPSTREAMS_0_CREDENTIALS_USERNAME: 'me', WHARF_UPSTREAMS_0_CREDENTIALS_PASSWORD_FILE: secret },
  }));
  assert.deepEqual(problems, [`WHARF_UPSTREAMS_0_CREDENTIALS_PASSWORD_FILE: file ${secret} is not readable (EACCES)`]);
});

test('listen accepts IPv6 and a bare :port, and checks the port range', async () => {
  assert.equal((await loadConfig({ env: { WHARF_LISTEN: '[::]:5000' } })).listen, '[::]:5000');
  assert.equal((await loadConfig({ env: { WHARF_LISTEN: ':5000' } })).listen, '0.0.0.0:5000');
  assert.equal((await loadConfig({ env: { WHARF_METRICS_LISTEN: '127.0.0.1:0' } })).metrics.listen, '127.0.0.1:0');
  assert.deepEqual(await problemsOf(loadConfig({ env: { WHARF_LISTEN: '0.0.0.0:65536' } })), [
    'WHARF_LISTEN: must be host:port with port 0-65535, got "0.0.0.0:65536"',
  ]);
});

test('metrics.auth names users of auth: from YAML or env, and refused without an auth section', async (t) => {
  const { file } = await withFile(t, 'upstreams: []\nauth: { tokens: [{ user: prometheus, token: t0123456789 }] }\nmetrics: { auth: [prometheus] }\n');
  assert.deepEqual((await loadConfig({ file, env: {} })).metrics.auth, ['prometheus']);
  assert.deepEqual((await loadConfig({ file, env: { WHARF_METRICS_AUTH_0: 'scraper' } })).metrics.auth, ['scraper']);
  const bare = await withFile(t, 'upstreams: []\nmetrics: { auth: [prometheus] }\n');
  assert.deepEqual(await problemsOf(loadConfig({ file: bare.file, env: {} })), ['metrics.auth: names users of auth, which is not configured']);
});
