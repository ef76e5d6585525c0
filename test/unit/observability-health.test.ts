import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { liveness, readiness } from '../../src/observability/health.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-health-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('readiness', () => {
  it('is ready on a writable data dir with room, and leaves no probe file behind', async (t) => {
    const dir = await tempDir(t);
    const r = await readiness({ dataDir: dir, minFreeBytes: 1 });
    assert.equal(r.ready, true);
    assert.equal(r.checks.dataDir, 'ok');
    assert.equal(r.checks.freeSpace, 'ok');
    assert.ok(typeof r.checks.freeBytes === 'number' && r.checks.freeBytes > 0);
    assert.deepEqual(await readdir(dir), []);
    // optional checks are only reported when configured
    assert.equal('redis' in r.checks, false);
    assert.equal('upstreams' in r.checks, false);
  });

  // Tests run as root, which chmod 0555 does not stop: use paths no one can write under instead.
  it('is not ready when the data dir is a regular file', async (t) => {
    const file = join(await tempDir(t), 'not-a-dir');
    await writeFile(file, 'x');
    const r = await readiness({ dataDir: file, minFreeBytes: 1 });
    assert.equal(r.ready, false);
    assert.match(String(r.checks.dataDir), /^not writable: .*ENOTDIR/);
  });

  it('is not ready when the data dir does not exist', async (t) => {
    const missing = join(await tempDir(t), 'missing');
    const r = await readiness({ dataDir: missing, minFreeBytes: 1 });
    assert.equal(r.ready, false);
    assert.match(String(r.checks.dataDir), /ENOENT/);
  });

  it('is not ready when free space is under minFreeBytes', async (t) => {
    const dir = await tempDir(t);
    const r = await readiness({ dataDir: dir, minFreeBytes: Number.MAX_SAFE_INTEGER });
    assert.equal(r.ready, false);
    assert.equal(r.checks.dataDir, 'ok');
    assert.match(String(r.checks.freeSpace), /bytes free, below the minimum of 9007199254740991/);
  });

  it('reports a failing Redis and upstreams without failing readiness', async (t) => {
    const dir = await tempDir(t);
    const r = await readiness({
      dataDir: dir,
      minFreeBytes: 1,
      checkRedis: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:6390');
      },
      checkUpstreams: async () => ({ 'docker.io': 'ok', 'ghcr.io': 'UNAVAILABLE: connect timeout' }),
    });
    assert.equal(r.ready, true);
    assert.equal(r.checks.redis, 'connect ECONNREFUSED 127.0.0.1:6390');
    assert.deepEqual(r.checks.upstreams, { 'docker.io': 'ok', 'ghcr.io': 'UNAVAILABLE: connect timeout' });
  });

  it('reports a healthy Redis as ok', async (t) => {
    const dir = await tempDir(t);
    const r = await readiness({ dataDir: dir, minFreeBytes: 1, checkRedis: async () => {} });
    assert.equal(r.checks.redis, 'ok');
  });

  it('bounds a hanging check by the 1 s timeout', async (t) => {
    const dir = await tempDir(t);
    const started = Date.now();
    const r = await readiness({
      dataDir: dir,
      minFreeBytes: 1,
      checkRedis: () => new Promise<void>(() => {}),
      checkUpstreams: () => new Promise(() => {}),
    });
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 3000, `took ${took} ms`);
    assert.equal(r.ready, true);
    assert.equal(r.checks.redis, 'timed out after 1000 ms');
    assert.equal(r.checks.upstreams, 'timed out after 1000 ms');
  });
});

describe('liveness', () => {
  it('answers ok', () => {
    assert.deepEqual(liveness(), { status: 'ok' });
  });
});
