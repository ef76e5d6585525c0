import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../../src/oci/index.js';
import { EmbeddedMetadataStore } from '../../src/store/meta/embedded.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-embedded-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const rec = (s: string) => ({ digest: digestOf(s), mediaType: 'm', size: 1, checkedAt: 1, origin: 'local' as const });

describe('EmbeddedMetadataStore durability', () => {
  it('ignores a torn last journal line after a crash and keeps every complete line', async (t) => {
    const dir = await tempDir(t);
    // Lines as a previous process left them: two complete, the last cut mid-append.
    const lines = [
      JSON.stringify({ op: 'tag', r: 'r/a', t: 'v1', v: rec('one') }),
      JSON.stringify({ op: 'tag', r: 'r/a', t: 'v2', v: rec('two') }),
    ];
    const torn = JSON.stringify({ op: 'tag', r: 'r/a', t: 'v3', v: rec('three') }).slice(0, 25);
    await writeFile(join(dir, 'journal.log'), `${lines.join('\n')}\n${torn}`);
    const s = await EmbeddedMetadataStore.open(dir);
    t.after(() => s.close());
    assert.deepEqual(s.recovery, { tornTail: true, skippedLines: 0, replayedOps: 2 });
    assert.deepEqual(await s.listTags('r/a'), { items: ['v1', 'v2'] });
    // New writes after recovery must not glue onto the torn fragment.
    await s.putTag('r/a', 'v4', rec('four'));
    await s.close();
    const again = await EmbeddedMetadataStore.open(dir);
    t.after(() => again.close());
    assert.equal(again.recovery.tornTail, false);
    assert.deepEqual(await again.listTags('r/a'), { items: ['v1', 'v2', 'v4'] });
  });

  it('a crash without close() loses no acknowledged write', async (t) => {
    const dir = await tempDir(t);
    // A child process writes, reports, and is killed without closing.
    const script = `
      import { EmbeddedMetadataStore } from ${JSON.stringify(new URL('../../src/store/meta/embedded.ts', import.meta.url).href)};
      const s = await EmbeddedMetadataStore.open(${JSON.stringify(dir)});
      await Promise.all(Array.from({ length: 50 }, (_, i) => s.markRepo('r/' + String(i).padStart(2, '0'), { local: true })));
      process.stdout.write('written\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => {
      child.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => b.toString().includes('written') && resolve());
      child.on('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    // While it runs, its lock names its pid.
    await assert.rejects(EmbeddedMetadataStore.open(dir), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, new RegExp(`held by pid ${child.pid}\\b`));
      assert.ok(e.message.includes(join(dir, 'LOCK')));
      return true;
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // Dead pid: the lock is taken over and every acknowledged write is there.
    const s = await EmbeddedMetadataStore.open(dir);
    t.after(() => s.close());
    assert.equal((await s.listRepos()).items.length, 50);
    assert.equal((await readFile(join(dir, 'LOCK'), 'utf8')).trim(), String(process.pid));
  });

  it('marking a repository as it is already marked adds no journal line, and waits for the line that marked it', async (t) => {
    const dir = await tempDir(t);
    const s = await EmbeddedMetadataStore.open(dir);
    t.after(() => s.close());
    const journal = join(dir, 'journal.log');
    const first = s.markRepo('r/a', { mirrored: true });
    let firstDone = false;
    void first.then(() => (firstDone = true));
    // Asked again before the first line is on the disk: it resolves only once that line is.
    await s.markRepo('r/a', { mirrored: true });
    assert.ok(firstDone, 'the repeated mark resolved before the line that made it was synced');
    const size = (await stat(journal)).size;
    for (let i = 0; i < 20; i++) await s.markRepo('r/a', { mirrored: true });
    assert.equal((await stat(journal)).size, size, 'repeated marks wrote journal lines');
    // A change is written.
    await s.markRepo('r/a', { local: true });
    assert.ok((await stat(journal)).size > size);
    assert.deepEqual(await s.getRepo('r/a'), { local: true, mirrored: true });
  });

  it('a second open in the same process is refused; close releases the lock', async (t) => {
    const dir = await tempDir(t);
    const a = await EmbeddedMetadataStore.open(dir);
    await assert.rejects(EmbeddedMetadataStore.open(dir), new RegExp(`held by pid ${process.pid}`));
    await a.close();
    await assert.rejects(stat(join(dir, 'LOCK')), { code: 'ENOENT' });
    const b = await EmbeddedMetadataStore.open(dir);
    await b.close();
  });

  it('a LOCK left by a dead pid (or by our own pid from an earlier life) is taken over', async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, 'LOCK'), `${process.pid}\n`); // container restart: same pid, not held here
    const a = await EmbeddedMetadataStore.open(dir);
    await a.close();
    await writeFile(join(dir, 'LOCK'), '2147483646\n');
    const b = await EmbeddedMetadataStore.open(dir);
    await b.close();
  });

  it('compacts the journal into the snapshot when it grows past the limit', async (t) => {
    const dir = await tempDir(t);
    const s = await EmbeddedMetadataStore.open(dir, { compactBytes: 4096 });
    for (let i = 0; i < 200; i++) await s.putTag('r/c', `t${i}`, rec(String(i)));
    assert.ok((await stat(join(dir, 'journal.log'))).size < 4096);
    // A crash after the snapshot but before anything else: an old journal replayed over it is harmless.
    await s.close();
    await appendFile(join(dir, 'journal.log'), `${JSON.stringify({ op: 'tag', r: 'r/c', t: 't0', v: rec('0') })}\n`);
    const again = await EmbeddedMetadataStore.open(dir);
    t.after(() => again.close());
    assert.equal((await again.listTags('r/c')).items.length, 200);
  });
});

describe('EmbeddedMetadataStore on a full disk', () => {
  it('a write whose journal line fails is undone, and so is every write queued behind it', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to mount a tmpfs');
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { open } = await import('node:fs/promises');
    const run = promisify(execFile);
    const dir = await mkdtemp(join(tmpdir(), 'wharf-embedded-full-'));
    let opened: EmbeddedMetadataStore | undefined;
    // One hook, in order: close the store, unmount, remove the mount point.
    t.after(async () => {
      await opened?.close().catch(() => undefined);
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]).catch(() => undefined));
      await rm(dir, { recursive: true, force: true });
    });
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
    } catch (e) {
      return t.skip(`mount -t tmpfs failed: ${(e as Error).message.split('\n')[0]}`);
    }
    const meta = join(dir, 'meta');
    const before = await EmbeddedMetadataStore.open(meta);
    await before.putTag('r/a', 'kept', rec('kept'));
    await before.putTag('r/a', 'doomed', rec('doomed'));
    await before.close(); // compacted: the journal starts empty, so its next line needs a free page

    const s = (opened = await EmbeddedMetadataStore.open(meta));
    const fh = await open(join(dir, 'filler'), 'w');
    try {
      for (;;) await fh.write(Buffer.alloc(4096, 1));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      await fh.close();
    }
    // Three writes in one tick: the first goes out alone, the other two queue behind it.
    const writes = [s.deleteTag('r/a', 'doomed'), s.putTag('r/a', 'new', rec('new')), s.putTag('r/a', 'kept', rec('moved'))];
    assert.deepEqual((await s.getTag('r/a', 'kept'))?.digest, digestOf('moved'), 'applied at once, while on its way to the disk');
    const results = await Promise.allSettled(writes);
    for (const r of results) assert.equal(r.status === 'rejected' && (r.reason as NodeJS.ErrnoException).code, 'ENOSPC');
    assert.deepEqual((await s.listTags('r/a')).items, ['doomed', 'kept']);
    assert.equal((await s.getTag('r/a', 'kept'))?.digest, digestOf('kept'));
    assert.equal(await s.getTag('r/a', 'new'), undefined);

    await rm(join(dir, 'filler'));
    await s.putTag('r/a', 'after', rec('after'));
    await s.close();
    const again = (opened = await EmbeddedMetadataStore.open(meta));
    assert.deepEqual((await again.listTags('r/a')).items, ['after', 'doomed', 'kept']);
    assert.equal((await again.getTag('r/a', 'kept'))?.digest, digestOf('kept'));
  });
});
