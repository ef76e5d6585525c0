import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { buildCli } from '../../src/cli.js';
import type { WharfConfig } from '../../src/config/index.js';

/** Fake process i/o: records output, exit codes and the configs serve() was given. */
function fakeIo(env: Record<string, string | undefined> = {}, cwd?: string) {
  const out: string[] = [];
  const err: string[] = [];
  const exits: number[] = [];
  const served: WharfConfig[] = [];
  const io = {
    env,
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => err.push(s) },
    exit: (code: number) => void exits.push(code),
    serve: async (c: WharfConfig) => void served.push(c),
    ...(cwd !== undefined ? { cwd } : {}),
  };
  return { io, stdout: () => out.join(''), stderr: () => err.join(''), exits, served };
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('--help lists the serve command and exits 0', async () => {
  const f = fakeIo();
  await buildCli(f.io).run(['--help']);
  assert.match(f.stdout(), /Usage: wharf/);
  assert.match(f.stdout(), /^\s+serve \[options\]\s+run the registry mirror$/m);
  assert.deepEqual(f.exits, [0]);
  assert.equal(f.served.length, 0);
});

test('serve --help shows its flags', async () => {
  const f = fakeIo();
  await buildCli(f.io).run(['serve', '--help']);
  for (const flag of ['--config <file>', '--listen <addr>', '--data-dir <dir>']) assert.ok(f.stdout().includes(flag), flag);
  assert.deepEqual(f.exits, [0]);
});

test('--version prints the package version', async () => {
  const f = fakeIo();
  await buildCli(f.io).run(['--version']);
  assert.match(f.stdout(), /^\d+\.\d+\.\d+\n$/);
  assert.deepEqual(f.exits, [0]);
});

test('an unknown command fails with a message', async () => {
  const f = fakeIo();
  await buildCli(f.io).run(['frobnicate']);
  assert.match(f.stderr(), /unknown command 'frobnicate'/);
  assert.deepEqual(f.exits, [1]);
});

test('serve with an invalid configuration exits 2 and prints every problem, and never serves', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'wharf.yaml');
  await writeFile(file, 'listen: nowhere\ncache: { maxSize: 12XB }\nupstreams: [{ name: mine, url: "ftp://x" }]\n');
  const f = fakeIo({ WHARF_LOG_LEVEL: 'loud', WHARF_TYPO: '1' });
  await buildCli(f.io).run(['serve', '--config', file]);
  assert.deepEqual(f.exits, [2]);
  assert.equal(f.served.length, 0);
  const lines = f.stderr().trimEnd().split('\n');
  assert.equal(lines[0], 'wharf: invalid configuration:');
  assert.deepEqual(lines.slice(1).map((l) => l.trim()), [
    'WHARF_TYPO: unknown variable',
    'listen: must be host:port with port 0-65535, got "nowhere"',
    'cache.maxSize: invalid size "12XB" (use e.g. 512MiB, 50GiB, 200GB or plain bytes)',
    'WHARF_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, silent, got "loud"',
    'upstreams.0.url: must be an http(s) URL',
  ]);
});

test('serve with a missing config file prints one line and exits 2', async () => {
  const f = fakeIo();
  await buildCli(f.io).run(['serve', '--config', '/nonexistent/wharf.yaml']);
  assert.equal(f.stderr(), 'wharf: cannot read config file /nonexistent/wharf.yaml: no such file\n');
  assert.deepEqual(f.exits, [2]);
});

test('serve passes the loaded config to serve(); flags win over env and file', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'wharf.yaml');
  await writeFile(file, 'listen: 127.0.0.1:5001\nlog: { level: debug }\n');
  const f = fakeIo({ WHARF_CONFIG: file, WHARF_LISTEN: '127.0.0.1:5002', WHARF_DATA_DIR: '/var/lib/env' }, dir);
  await buildCli(f.io).run(['serve', '--listen', '127.0.0.1:5003', '--data-dir', 'here']);
  assert.deepEqual(f.exits, []);
  assert.equal(f.served.length, 1);
  assert.equal(f.served[0]?.listen, '127.0.0.1:5003');
  assert.equal(f.served[0]?.dataDir, join(dir, 'here'));
  assert.equal(f.served[0]?.log.level, 'debug', 'WHARF_CONFIG was read');
});

test('a failing serve() is reported on one line with exit 1', async () => {
  const f = fakeIo();
  f.io.serve = async () => {
    throw new Error('listen EADDRINUSE: address already in use 0.0.0.0:5000');
  };
  await buildCli(f.io).run(['serve']);
  assert.equal(f.stderr(), 'wharf: listen EADDRINUSE: address already in use 0.0.0.0:5000\n');
  assert.deepEqual(f.exits, [1]);
});

test('offline commands on a directory without a store create nothing and say what they expected', async (t) => {
  const dir = await tempDir(t);
  for (const cmd of [['ls'], ['gc', '--dry-run'], ['verify']]) {
    const f = fakeIo();
    await buildCli(f.io).run([...cmd, '--data-dir', dir]);
    assert.deepEqual(f.exits, [1], `${cmd[0]}: ${f.stderr()}`);
    assert.equal(f.stderr(), `wharf: ${dir} holds no wharf store: expected blobs/ and meta/ in it (a wharf dataDir with the embedded metadata store)\n`);
    assert.equal(f.stdout(), '');
    assert.deepEqual(await readdir(dir), [], `${cmd[0]} created nothing`);
  }
  const absent = join(dir, 'nope');
  const f = fakeIo();
  await buildCli(f.io).run(['ls', '--data-dir', absent]);
  assert.deepEqual(f.exits, [1]);
  assert.match(f.stderr(), /^wharf: data directory .*nope does not exist/);
  assert.deepEqual(await readdir(dir), [], 'the missing directory was not created');
});
