/**
 * Downloads written past the page cache (O_DIRECT): the bytes that land in the cache are the bytes given, in
 * every size that crosses a block or a staging-buffer boundary; they can be read back at any moment; a failed
 * disk write loses nothing that was accepted; and the file's pages are not left in memory. The store is the
 * real one on a temp dir (ext4 on these machines), with the real O_DIRECT handles, failures injected on demand.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { digestOf } from '../../src/oci/index.js';
import { nodeBlobFs, type BlobFileHandle } from '../../src/store/blob/blob-fs.js';
import { AlignedSlots } from '../../src/store/blob/aligned-slots.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';
import type { BlobWriter } from '../../src/store/types.js';
import { faultyFs } from '../helpers/faulty-fs.js';
import { pageCacheBytes } from '../helpers/page-cache.js';
import { blobFile } from '../helpers/wharf.js';

const MiB = 1024 * 1024;

async function tempRoot(t: { after(fn: () => Promise<void>): void }, parent = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(parent, 'wharf-direct-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Incompressible, position-dependent bytes: a block written to the wrong offset cannot go unnoticed. */
function pattern(size: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

async function* pieces(bytes: Buffer, sizes: number[]): AsyncGenerator<Buffer[]> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield [bytes.subarray(at, at + n)];
    at += n;
  }
}

/** Only where the test's temp dir is on a file system that takes direct writes (ext4 on these machines). */
async function directStore(t: { after(fn: () => Promise<void>): void; skip(msg: string): void }, fs = nodeBlobFs, directFrom = 0): Promise<{ root: string; store: FsBlobStore } | undefined> {
  const root = await tempRoot(t);
  const store = await FsBlobStore.open(root, { directWrites: true, fs, directFrom });
  const type = await nodeBlobFs.fsType!(root);
  if (!['ext4', 'xfs', 'btrfs'].includes(type)) {
    assert.equal(store.directWrites.enabled, false);
    t.skip(`${tmpdir()} is ${type}: direct writes are (rightly) off there`);
    return undefined;
  }
  assert.equal(store.directWrites.enabled, true, store.directWrites.reason);
  return { root, store };
}

describe('FsBlobStore: direct writes (downloads past the page cache)', () => {
  for (const [label, size, sizes] of [
    ['empty', 0, [1]],
    ['one byte', 1, [1]],
    ['one block less a byte', 4095, [4095]],
    ['one block and a byte, in two writes', 4097, [4096, 1]],
    ['5 MiB + 3 in odd pieces (crossing blocks and the 2 MiB staging buffer)', 5 * MiB + 3, [1, 4095, 70_001, 1 * MiB + 17, 2 * MiB + 4096]],
  ] as const) {
    it(`commits exactly the bytes given: ${label}`, async (t) => {
      const s = await directStore(t);
      if (!s) return;
      const bytes = pattern(size);
      const digest = digestOf(bytes);
      const w = await s.store.create(undefined, { direct: true });
      assert.equal(await w.write(pieces(bytes, [...sizes])), size);
      assert.equal((await w.commit(digest, size)).digest, digest);
      await w.release();
      assert.ok((await readFile(blobFile(s.root, digest))).equals(bytes));
    });
  }

  for (const [label, from] of [['past the page cache from the start', 0], ['through the page cache up to 2 MiB, past it after', 2 * MiB]] as const) {
  it(`reads back what was written at any moment, from the disk and from the unwritten last block alike (${label})`, async (t) => {
    const s = await directStore(t, nodeBlobFs, from);
    if (!s) return;
    const bytes = pattern(3 * MiB + 1234, 2);
    const w = await s.store.create(undefined, { direct: true });
    let written = 0;
    for await (const piece of pieces(bytes, [333_333, 1 * MiB + 1])) {
      await w.write((async function* () { yield piece; })());
      written += piece[0]!.length;
      for (const at of [0, written - 4097, written - 4096, written - 1000, written - 1]) {
        if (at < 0) continue;
        assert.ok((await w.readAt(at, written - at)).equals(bytes.subarray(at, written)), `bytes [${at}, ${written}) read back after ${written} written`);
      }
    }
    await w.cancel();
  });
  }

  // The disk fills while the file is still written through the page cache (the ordinary handle fails), or
  // once it is past it (the O_DIRECT handle fails); the failed write crosses from one to the other.
  for (const [label, from, failing] of [['past the page cache', 0, 'direct'], ['through the page cache, the failed write crossing over', 2 * MiB, 'buffered']] as const) {
    it(`a disk that fills mid-write keeps exactly the bytes accepted before; writing on after space is freed gives the right blob (${label})`, async (t) => {
      let full = false;
      const enospc = (real: BlobFileHandle): Partial<BlobFileHandle> => ({
        write: async (b, o, l, p) => {
          if (full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return real.write(b, o, l, p);
        },
        writev: async (bufs, p) => {
          if (full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return real.writev(bufs, p);
        },
      });
      const fs = failing === 'direct' ? faultyFs(() => ({}), enospc) : faultyFs(enospc);
      const s = await directStore(t, fs, from);
      if (!s) return;
      const bytes = pattern(4 * MiB + 999, 3);
      const digest = digestOf(bytes);
      const w: BlobWriter = await s.store.create(undefined, { direct: true });
      const first = 1 * MiB + 4097;
      await w.write(pieces(bytes.subarray(0, first), [first]));
      full = true;
      await assert.rejects(w.write(pieces(bytes.subarray(first, first + 2 * MiB), [2 * MiB])), /ENOSPC/);
      assert.equal(w.size, first, 'the failed write counts no bytes');
      assert.ok((await w.readAt(0, first)).equals(bytes.subarray(0, first)));
      full = false;
      await w.write(pieces(bytes.subarray(first), [2 * MiB + 5]));
      assert.equal((await w.commit(digest, bytes.length)).digest, digest);
      await w.release();
      assert.ok((await readFile(blobFile(s.root, digest))).equals(bytes));
    });
  }

  it('a released (parked) writer has its last partial block in the file, and a resumed one continues it', async (t) => {
    const s = await directStore(t);
    if (!s) return;
    const bytes = pattern(2 * MiB + 4096 + 77, 4);
    const digest = digestOf(bytes);
    const w = await s.store.create(undefined, { direct: true });
    const half = 1 * MiB + 5;
    await w.write(pieces(bytes.subarray(0, half), [half]));
    await w.release();
    const again = await s.store.resume(w.id);
    assert.ok(again);
    assert.equal(again.size, half);
    await again.write(pieces(bytes.subarray(half), [64 * 1024]));
    assert.equal((await again.commit(digest)).digest, digest);
    await again.release();
    assert.ok((await readFile(blobFile(s.root, digest))).equals(bytes));
  });

  it('leaves the downloaded file out of memory (the page cache holds at most its last block)', async (t) => {
    const s = await directStore(t);
    if (!s) return;
    const bytes = pattern(16 * MiB + 100, 5);
    const digest = digestOf(bytes);
    const measure = async (direct: boolean): Promise<number> => {
      const w = await s.store.create(undefined, { direct });
      await w.write(pieces(bytes, [1 * MiB + 3]));
      await w.commit(digest);
      await w.release();
      const resident = await pageCacheBytes(blobFile(s.root, digest));
      await s.store.delete(digest);
      return resident;
    };
    const cachedDirect = await measure(true);
    const cachedBuffered = await measure(false);
    assert.ok(cachedDirect <= 8192, `${cachedDirect} bytes of a direct download are in the page cache`);
    // The same file written through the page cache is there, so the check above can tell the two apart.
    assert.ok(cachedBuffered >= 8 * MiB, `only ${cachedBuffered} bytes of a buffered write are in the page cache`);
  });

  it('keeps a file\'s first bytes (up to directFrom) in the page cache and writes the rest past it, crossing mid-write', async (t) => {
    const s = await directStore(t, nodeBlobFs, 4 * MiB);
    if (!s) return;
    const bytes = pattern(12 * MiB + 321, 7);
    const digest = digestOf(bytes);
    const w = await s.store.create(undefined, { direct: true });
    await w.write(pieces(bytes, [3 * MiB + 7]));
    await w.commit(digest);
    await w.release();
    const cached = await pageCacheBytes(blobFile(s.root, digest));
    assert.ok(cached >= 4 * MiB && cached <= 4 * MiB + 8192, `${cached} bytes in the page cache, not the first 4 MiB (and the last block)`);
    assert.ok((await readFile(blobFile(s.root, digest))).equals(bytes));
    // Read back across the crossing while it is still being written (a read leaves pages behind, so not above).
    const again = await s.store.create(undefined, { direct: true });
    await again.write(pieces(bytes, [3 * MiB + 7]));
    assert.ok((await again.readAt(4 * MiB - 10, 20)).equals(bytes.subarray(4 * MiB - 10, 4 * MiB + 10)));
    assert.ok((await again.readAt(12 * MiB, 321)).equals(bytes.subarray(12 * MiB)));
    await again.cancel();
  });

  it('writes through the page cache, and correctly, when the O_DIRECT handle cannot be had after all', async (t) => {
    const fs = { ...nodeBlobFs, openDirect: async () => Promise.reject(Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' })) };
    const root = await tempRoot(t);
    // The start-up probe passes on the real fs; later opens fail (a file-descriptor limit reached).
    const probeOk = await FsBlobStore.open(root, { directWrites: true, directFrom: 0 });
    if (!probeOk.directWrites.enabled) return t.skip(probeOk.directWrites.reason);
    const store = new FsBlobStore({ root, fs, directFrom: 0 }, { writes: probeOk.directWrites, slots: new AlignedSlots(2 << 20) });
    const bytes = pattern(3 * MiB + 5, 8);
    const digest = digestOf(bytes);
    const w = await store.create(undefined, { direct: true });
    await w.write(pieces(bytes, [1 * MiB + 1]));
    await w.commit(digest);
    await w.release();
    assert.ok((await readFile(blobFile(root, digest))).equals(bytes));
    const resident = await pageCacheBytes(blobFile(root, digest));
    assert.ok(resident >= 3 * MiB, 'written through the page cache');
  });

  it('is off where the file system is not a local block one (tmpfs), and writes still work there', async (t) => {
    const shm = await statfs('/dev/shm').catch(() => undefined);
    if (!shm) return t.skip('no /dev/shm');
    const root = await tempRoot(t, '/dev/shm');
    const store = await FsBlobStore.open(root, { directWrites: true });
    assert.equal(store.directWrites.enabled, false);
    assert.match(store.directWrites.reason, /tmpfs/);
    const bytes = pattern(5000, 6);
    const w = await store.create(undefined, { direct: true });
    await w.write(pieces(bytes, [4096]));
    assert.equal((await w.commit(digestOf(bytes))).size, 5000);
    await w.release();
  });

  it('is off unless asked for', async (t) => {
    const store = await FsBlobStore.open(await tempRoot(t));
    assert.equal(store.directWrites.enabled, false);
  });
});
