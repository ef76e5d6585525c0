import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { digestOf, isRegistryError } from '../../src/oci/index.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';
import { nodeBlobFs, type BlobFs } from '../../src/store/blob/blob-fs.js';
import { faultyFs } from '../helpers/faulty-fs.js';

async function tempRoot(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-blob-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function chunks(...parts: string[]): AsyncIterable<Uint8Array> {
  return Readable.from(parts.map((p) => Buffer.from(p)));
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) if (e.isFile()) out.push(e.name);
  return out;
}

function hasCode(code: string) {
  return (e: unknown) => isRegistryError(e) && e.code === code;
}

describe('FsBlobStore', () => {
  it('commits verified content at blobs/<alg>/<2 hex>/<hex> and reads it back', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const w = await store.create();
    assert.equal(await w.write(chunks('hello ', 'world')), 11);
    assert.equal(w.size, 11);
    const d = digestOf('hello world');
    const desc = await w.commit(d, 11);
    assert.deepEqual({ digest: desc.digest, size: desc.size }, { digest: d, size: 11 });
    const hex = d.slice(7);
    assert.equal((await stat(join(root, 'blobs', 'sha256', hex.slice(0, 2), hex))).size, 11);
    assert.deepEqual(await filesUnder(join(root, 'tmp')), []);
    assert.deepEqual(await store.stat(d), { digest: d, size: 11 });
    assert.equal(await text((await store.read(d))!), 'hello world');
    // readAt keeps working after commit until release
    assert.equal((await w.readAt(6, 5)).toString(), 'world');
    await w.release();
    await assert.rejects(w.readAt(0, 1));
  });

  it('verifies sha512 digests too', async (t) => {
    const store = await FsBlobStore.open(await tempRoot(t));
    const w = await store.create();
    await w.write(chunks('abc'));
    const d = digestOf('abc', 'sha512');
    await w.commit(d);
    await w.release();
    assert.equal(await text((await store.read(d))!), 'abc');
    const listed = [];
    for await (const b of store.list()) listed.push(b);
    assert.deepEqual(listed, [{ digest: d, size: 3 }]);
  });

  it('a digest mismatch throws DIGEST_INVALID and leaves no file under blobs/ or tmp/', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const w = await store.create();
    await w.write(chunks('actual'));
    await assert.rejects(w.commit(digestOf('expected')), hasCode('DIGEST_INVALID'));
    assert.deepEqual(await filesUnder(join(root, 'blobs')), []);
    assert.deepEqual(await filesUnder(join(root, 'tmp')), []);
    assert.equal(await store.stat(digestOf('actual')), undefined);
    await w.cancel(); // still safe
  });

  it('a size mismatch throws SIZE_INVALID and discards', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const w = await store.create();
    await w.write(chunks('12345'));
    await assert.rejects(w.commit(digestOf('12345'), 4), hasCode('SIZE_INVALID'));
    assert.deepEqual(await filesUnder(root), []);
  });

  it('stores identical content once when committed twice', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const d = digestOf('same');
    for (let i = 0; i < 2; i++) {
      const w = await store.create();
      await w.write(chunks('same'));
      await w.commit(d, 4);
      await w.release();
    }
    assert.equal((await filesUnder(join(root, 'blobs'))).length, 1);
    assert.deepEqual(await filesUnder(join(root, 'tmp')), []);
  });

  it('serves ranges and rejects ranges outside the blob', async (t) => {
    const store = await FsBlobStore.open(await tempRoot(t));
    const w = await store.create();
    await w.write(chunks('0123456789'));
    const d = await w.commit(digestOf('0123456789'));
    await w.cancel();
    assert.equal(await text((await store.read(d.digest, { start: 2, end: 5 }))!), '2345');
    assert.equal(await text((await store.read(d.digest, { start: 9, end: 9 }))!), '9');
    await assert.rejects(store.read(d.digest, { start: 5, end: 10 }), hasCode('RANGE_INVALID'));
    assert.equal(await store.read(digestOf('absent')), undefined);
    assert.equal(await store.stat(digestOf('absent')), undefined);
    assert.equal(await store.delete(d.digest), true);
    assert.equal(await store.delete(d.digest), false);
    assert.equal(await store.read(d.digest), undefined);
  });

  it('readAt returns bytes already written while a write is still running', async (t) => {
    const store = await FsBlobStore.open(await tempRoot(t));
    const w = await store.create();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let firstWritten!: () => void;
    const firstDone = new Promise<void>((r) => (firstWritten = r));
    async function* slow() {
      yield Buffer.from('first-');
      await new Promise((r) => setImmediate(r));
      firstWritten();
      await gate;
      yield Buffer.from('second');
    }
    const writing = w.write(slow());
    await firstDone;
    assert.equal(w.size, 6);
    assert.equal((await w.readAt(0, 100)).toString(), 'first-');
    release();
    assert.equal(await writing, 12);
    assert.equal((await w.readAt(6, 6)).toString(), 'second');
    await w.cancel();
  });

  it('resume after release continues the hash', async (t) => {
    const store = await FsBlobStore.open(await tempRoot(t));
    const w = await store.create();
    await w.write(chunks('part1-'));
    await w.release();
    const r = await store.resume(w.id);
    assert.ok(r);
    assert.equal(r.size, 6);
    await r.write(chunks('part2'));
    const desc = await r.commit(digestOf('part1-part2'), 11);
    assert.equal(desc.size, 11);
    await r.release();
  });

  it('resume on a new instance (restart) re-hashes the existing bytes and gives the right digest', async (t) => {
    const root = await tempRoot(t);
    const a = await FsBlobStore.open(root);
    const w = await a.create();
    await w.write(chunks('before-restart|'));
    await w.release();
    const b = await FsBlobStore.open(root);
    const r = await b.resume(w.id);
    assert.ok(r);
    assert.equal(r.size, 15);
    await r.write(chunks('after'));
    await r.commit(digestOf('before-restart|after'), 20);
    await r.release();
    assert.equal(await text((await b.read(digestOf('before-restart|after')))!), 'before-restart|after');
  });

  it('a resumed writer publishes the bytes in its file, not a hash kept from before (another replica may have written them)', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const w = await store.create();
    await w.write(chunks('good bytes'));
    await w.release();
    // Another process on the shared volume writes the same number of other bytes into the session's file.
    await writeFile(join(root, 'tmp', w.id), 'evil bytes');
    const resumed = (await store.resume(w.id))!;
    await assert.rejects(resumed.commit(digestOf('good bytes')), hasCode('DIGEST_INVALID'));
    assert.deepEqual(await filesUnder(join(root, 'blobs')), []);
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
    const again = await store.create();
    await again.write(chunks('good bytes'));
    await again.release();
    const honest = (await store.resume(again.id))!;
    assert.equal((await honest.commit(digestOf('good bytes'))).size, 10);
    assert.equal(await text((await store.read(digestOf('good bytes')))!), 'good bytes');
  });

  it('a damaged file under a digest is replaced by the next verified copy', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const d = digestOf('the real bytes');
    await mkdir(join(store.blobPath(d), '..'), { recursive: true });
    await writeFile(store.blobPath(d), 'poisoned bytes');
    const w = await store.create();
    await w.write(chunks('the real bytes'));
    await w.commit(d);
    assert.equal(await text((await store.read(d))!), 'the real bytes');
    assert.deepEqual(await readdir(join(root, 'tmp')), []);
  });

  it('truncate cuts the content back; commit hashes what is left', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const w = await store.create();
    await w.write(chunks('kept', ' and cut'));
    await w.truncate(4);
    assert.equal(w.size, 4);
    assert.equal((await stat(join(root, 'tmp', w.id))).size, 4);
    await assert.rejects(w.truncate(5), RangeError);
    await w.write(chunks('!'));
    assert.equal((await w.commit(digestOf('kept!'), 5)).size, 5);
    assert.equal(await text((await store.read(digestOf('kept!')))!), 'kept!');
  });

  it('resume of an unknown id is undefined; ids that could escape tmp/ are rejected', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    await writeFile(join(root, 'x'), 'outside');
    assert.equal(await store.resume('nope'), undefined);
    for (const bad of ['../x', '..', 'a/b', '', '.hidden', 'x\0y']) {
      await assert.rejects(store.resume(bad), hasCode('BLOB_UPLOAD_INVALID'), bad);
    }
    await assert.rejects(store.create('../escape'), hasCode('BLOB_UPLOAD_INVALID'));
  });

  it('cancel twice is safe and removes the temp file', async (t) => {
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root);
    const w = await store.create();
    await w.write(chunks('bytes'));
    await w.cancel();
    await w.cancel();
    assert.deepEqual(await filesUnder(root), []);
    assert.equal(await store.resume(w.id), undefined);
    await assert.rejects(w.write(chunks('more')));
  });

  it('an aborted write rejects, keeps what was written, and can be resumed', async (t) => {
    const store = await FsBlobStore.open(await tempRoot(t));
    const w = await store.create();
    const ac = new AbortController();
    async function* stalls() {
      yield Buffer.from('kept');
      await new Promise(() => undefined); // never yields again
    }
    const p = w.write(stalls(), ac.signal);
    setTimeout(() => ac.abort(new Error('client went away')), 20);
    await assert.rejects(p, /client went away/);
    assert.equal(w.size, 4);
    await w.write(chunks('+more'));
    await w.commit(digestOf('kept+more'));
    await w.cancel();
  });

  it('sweepTemp removes stale temp files only', async (t) => {
    const root = await tempRoot(t);
    let now = Date.now();
    const store = await FsBlobStore.open(root, { now: () => now });
    const live = await store.create();
    await live.write(chunks('open writer'));
    const parked = await store.create();
    await parked.write(chunks('parked'));
    await parked.release();
    const leftover = await store.create();
    await leftover.write(chunks('crash leftover'));
    await leftover.release();
    const fresh = await store.create();
    await fresh.release();
    const old = new Date(now - 3_600_000);
    for (const id of [live.id, parked.id, leftover.id]) await utimes(join(root, 'tmp', id), old, old);
    const res = await store.sweepTemp(60_000, (id) => id === parked.id);
    assert.deepEqual(res, { removed: [leftover.id], bytes: 14 });
    assert.equal(await store.resume(leftover.id), undefined);
    const resumed = await store.resume(parked.id);
    assert.ok(resumed);
    await resumed.release();
    assert.equal(live.size, 11);
    now += 10 * 60_000;
    const res2 = await store.sweepTemp(60_000);
    assert.ok(res2.removed.includes(fresh.id));
    assert.ok(!res2.removed.includes(live.id));
    await live.cancel();
  });

  it('ENOSPC rejects write(), publishes nothing, and cancel() cleans up', async (t) => {
    const root = await tempRoot(t);
    let budget = 8;
    const fullDiskFs = faultyFs((real) => {
      const write = async (b: Uint8Array, o: number, l: number, p: number) => {
        if (l > budget) {
          // a short write, then the disk is full
          if (budget > 0) await real.write(b, o, budget, p);
          budget = 0;
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        budget -= l;
        return real.write(b, o, l, p);
      };
      return {
        write,
        writev: (bufs, p) => {
          const whole = Buffer.concat(bufs);
          return write(whole, 0, whole.length, p);
        },
      };
    });
    const store = await FsBlobStore.open(root, { fs: fullDiskFs });
    const w = await store.create();
    await assert.rejects(w.write(chunks('12345', '67890')), (e: unknown) => (e as { code?: string }).code === 'ENOSPC');
    assert.equal(w.size, 5);
    assert.equal((await stat(join(root, 'tmp', w.id))).size, 5);
    assert.deepEqual(await filesUnder(join(root, 'blobs')), []);
    await w.cancel();
    assert.deepEqual(await filesUnder(root), []);
  });

  it('flushes large writes in the background, and a failed flush fails the commit (nothing published)', async (t) => {
    const root = await tempRoot(t);
    let datasyncs = 0;
    // sync() passes through: after a failed datasync Linux need not report the error again.
    const failingDisk = faultyFs(() => ({
      async datasync() {
        datasyncs++;
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      },
    }));
    const store = await FsBlobStore.open(root, { fs: failingDisk });
    const w = await store.create();
    const mib = Buffer.alloc(1 << 20, 7);
    const body = (async function* () {
      for (let i = 0; i < 40; i++) yield mib;
    })();
    await w.write(body);
    assert.ok(datasyncs >= 1, 'no background flush after 40 MiB');
    const digest = digestOf(Buffer.concat(Array.from({ length: 40 }, () => mib)));
    await assert.rejects(w.commit(digest), (e: unknown) => (e as { code?: string }).code === 'EIO');
    assert.deepEqual(await filesUnder(join(root, 'blobs')), []);
    assert.equal(await store.stat(digest), undefined);
    await w.cancel();
  });

  describe('open()', () => {
    it('creates blobs/ and tmp/ under a new root', async (t) => {
      const root = join(await tempRoot(t), 'data');
      await FsBlobStore.open(root);
      assert.ok((await stat(join(root, 'blobs'))).isDirectory());
      assert.ok((await stat(join(root, 'tmp'))).isDirectory());
    });

    it('names the path when the root is missing and creation is off', async (t) => {
      const root = join(await tempRoot(t), 'missing');
      await assert.rejects(FsBlobStore.open(root, { create: false }), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.equal(e.message, `blob store: ${root} does not exist`);
        return true;
      });
    });

    it('names the path when the root is a file', async (t) => {
      const root = join(await tempRoot(t), 'file');
      await writeFile(root, 'x');
      await assert.rejects(FsBlobStore.open(root), { message: `blob store: ${root} is not a directory` });
    });

    it('names the path when tmp/ is not a directory', async (t) => {
      const root = await tempRoot(t);
      await writeFile(join(root, 'tmp'), 'x');
      await assert.rejects(FsBlobStore.open(root), { message: `blob store: ${join(root, 'tmp')} is not a directory` });
    });

    it('names the path when the root is not writable', async (t) => {
      const root = await tempRoot(t);
      await mkdir(join(root, 'blobs'));
      await mkdir(join(root, 'tmp'));
      // Running as root ignores mode bits, so a read-only volume is played by an fs whose writes fail.
      const readOnlyFs: BlobFs = {
        ...nodeBlobFs,
        async assertWritable() {
          throw Object.assign(new Error('EROFS: read-only file system'), { code: 'EROFS' });
        },
      };
      await assert.rejects(FsBlobStore.open(root, { fs: readOnlyFs }), {
        message: `blob store: ${join(root, 'tmp')} is not writable (EROFS: EROFS: read-only file system)`,
      });
      if (process.getuid?.() !== 0) {
        const { chmod } = await import('node:fs/promises');
        await chmod(join(root, 'tmp'), 0o555);
        t.after(() => chmod(join(root, 'tmp'), 0o755));
        await assert.rejects(FsBlobStore.open(root), /is not writable \(EACCES/);
      }
    });
  });
});
