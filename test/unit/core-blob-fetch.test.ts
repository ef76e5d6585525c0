/**
 * When a download's clients get its bytes: while they are still being written to the cache file; the last
 * one as soon as the content is proven (digest checked), not after the fsync and rename that make it a
 * cache entry; and a corrupted body still never gets its last byte to a client. The upstream is a fake (a Readable of fixed bytes); the store is the real one on a
 * temp dir, with its file handles' sync() held or failed on demand.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { BlobFetch } from '../../src/core/blob-fetch.js';
import { digestOf, type Digest } from '../../src/oci/index.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';
import type { Upstream } from '../../src/upstream/types.js';
import { faultyFs, heldSyncFs } from '../helpers/faulty-fs.js';
import { within } from '../helpers/settle.js';

async function tempRoot(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-fetch-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fake upstream that answers every blob request with `bytes` (whatever digest was asked for). */
function fakeUpstream(bytes: Buffer): Pick<Upstream, 'blob'> {
  return {
    blob: async () => ({ size: bytes.length, offset: 0, body: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]) }),
  };
}

/** A fake upstream answering every blob request with a body of `size` bytes made of `chunks()`. */
function upstreamOf(size: number, chunks: () => Iterable<Buffer> | AsyncIterable<Buffer>): Pick<Upstream, 'blob'> {
  return { blob: async () => ({ size, offset: 0, body: Readable.from(chunks()) }) };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function fetchOf(store: FsBlobStore, bytes: Buffer, digest: Digest, onCacheWriteError?: (e: Error) => void): BlobFetch {
  return new BlobFetch({ store, upstream: fakeUpstream(bytes), repoPath: 'acme/app', digest, timeoutMs: 30_000, resumeAttempts: 0, onCacheWriteError });
}

describe('BlobFetch: when clients get the bytes', () => {
  it('a client gets the bytes while their write to the cache file is still running', async (t) => {
    const bytes = Buffer.alloc(64 * 1024, 1);
    const digest = digestOf(bytes);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slowDisk = faultyFs((real) => ({
      write: async (b, o, l, p) => (await gate, real.write(b, o, l, p)),
      writev: async (bufs, p) => (await gate, real.writev(bufs, p)),
    }));
    const store = await FsBlobStore.open(await tempRoot(t), { fs: slowDisk });
    const fetch = fetchOf(store, bytes, digest);
    const reader = fetch.reader();
    let got = 0;
    const allButLast = new Promise<void>((resolve) =>
      reader.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= bytes.length - 1) resolve();
      }),
    );
    try {
      // Every byte but the last (held back until the digest is checked, which needs the write done).
      await within(allButLast, 5000, `the client got ${got} of ${bytes.length} bytes while the cache write was held`);
      assert.equal(got, bytes.length - 1);
    } finally {
      release();
    }
    await new Promise((resolve) => reader.once('end', resolve));
    assert.equal(got, bytes.length);
    assert.equal((await fetch.done).digest, digest);
    fetch.close();
  });


  it('a client gets the whole blob while the commit is still on the disk; it is cached once the commit ends', async (t) => {
    const bytes = Buffer.alloc(64 * 1024, 3);
    const digest = digestOf(bytes);
    const disk = heldSyncFs('pass');
    const store = await FsBlobStore.open(await tempRoot(t), { fs: disk.fs });
    const fetch = fetchOf(store, bytes, digest);
    const got = readAll(fetch.reader());
    await disk.syncing;
    // The fsync is held until the client is done (a client that waited for it would wait for ever).
    assert.deepEqual(await within(got, 5000, 'the client is still waiting for the fsync'), bytes);
    assert.equal(await store.stat(digest), undefined, 'not a cache entry before its commit');
    disk.release();
    assert.equal((await fetch.done).digest, digest);
    assert.equal((await store.stat(digest))?.size, bytes.length);
    fetch.close();
  });

  it('a commit that fails after the content was proven: the client still completes, nothing is cached, the failure is reported', async (t) => {
    const bytes = Buffer.alloc(64 * 1024, 5);
    const digest = digestOf(bytes);
    const disk = heldSyncFs('fail');
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root, { fs: disk.fs });
    const reported: Error[] = [];
    const fetch = fetchOf(store, bytes, digest, (e) => reported.push(e));
    const early = fetch.reader();
    const got = readAll(early);
    await disk.syncing;
    // A second client joins while the commit runs and reads after it failed: still served from the temp file.
    const late = fetch.reader();
    disk.release();
    await assert.rejects(fetch.done, /EIO/);
    assert.deepEqual(await got, bytes);
    assert.deepEqual(await readAll(late), bytes);
    assert.equal(await store.stat(digest), undefined);
    assert.equal(reported.length, 1);
    fetch.close();
  });

  it('a cache write that fails mid-download (ENOSPC): the client still gets every byte, verified, and nothing is kept', async (t) => {
    const piece = 640 * 1024;
    const bytes = Buffer.from(Array.from({ length: 4 * piece }, (_, i) => i % 251));
    const digest = digestOf(bytes);
    let writes = 0;
    const fullDisk = faultyFs((real) => {
      const fail = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return {
        write: async (b, o, l, p) => {
          if (++writes > 1) throw fail();
          return real.write(b, o, l, p);
        },
        writev: async (bufs, p) => {
          if (++writes > 1) throw fail();
          return real.writev(bufs, p);
        },
      };
    });
    const root = await tempRoot(t);
    const store = await FsBlobStore.open(root, { fs: fullDisk });
    const reported: Error[] = [];
    // Four pieces, a tick apart; the file gets them about 1 MiB at a time: the first two reach it in one
    // write, the write of the last two fails.
    const upstream = upstreamOf(bytes.length, async function* () {
      for (let i = 0; i < 4; i++) {
        yield bytes.subarray(i * piece, (i + 1) * piece);
        await new Promise((r) => setImmediate(r));
      }
    });
    const fetch = new BlobFetch({ store, upstream, repoPath: 'acme/app', digest, timeoutMs: 30_000, resumeAttempts: 0, onCacheWriteError: (e) => reported.push(e) });
    const got = readAll(fetch.reader());
    assert.deepEqual(await within(got, 5000, 'the client never finished'), bytes);
    await assert.rejects(fetch.done);
    assert.ok(writes >= 2, 'the disk never filled');
    assert.equal(reported.length, 1);
    assert.equal(await store.stat(digest), undefined);
    fetch.close();
  });

  it('the cache file gets a trickling body in writes of about 1 MiB, and its client has the bytes not yet written', async (t) => {
    const MiB = 1024 * 1024;
    const piece = 16 * 1024;
    const bytes = Buffer.from(Array.from({ length: 4 * MiB }, (_, i) => (i * 7) % 253));
    const digest = digestOf(bytes);
    const writes: number[] = [];
    let inFile = 0;
    const counting = faultyFs((real) => ({
      write: async (b, o, l, p) => {
        writes.push(l);
        const r = await real.write(b, o, l, p);
        inFile += r.bytesWritten;
        return r;
      },
      writev: async (bufs, p) => {
        writes.push(bufs.reduce((a, x) => a + x.length, 0));
        const r = await real.writev(bufs, p);
        inFile += r.bytesWritten;
        return r;
      },
    }));
    const store = await FsBlobStore.open(await tempRoot(t), { fs: counting });
    let got = 0;
    let caughtUp!: () => void;
    const clientHasHalf = new Promise<void>((r) => (caughtUp = r));
    let atPause = { got: 0, inFile: 0 };
    const upstream = upstreamOf(bytes.length, async function* () {
      for (let sent = 0; sent < bytes.length; sent += piece) {
        yield bytes.subarray(sent, sent + piece);
        // Each piece alone, a tick apart: the way a slow link delivers.
        await new Promise((r) => setImmediate(r));
        if (sent + piece === 1.5 * MiB) {
          // The link stalls with half a MiB past the first write: the client must have it all the same.
          await within(clientHasHalf, 5000, 'the client never got the bytes received but not yet written');
          atPause = { got, inFile };
        }
      }
    });
    const fetch = new BlobFetch({ store, upstream, repoPath: 'acme/app', digest, timeoutMs: 30_000, resumeAttempts: 0 });
    const parts: Buffer[] = [];
    for await (const c of fetch.reader()) {
      parts.push(c as Buffer);
      got += (c as Buffer).length;
      // (the last byte received is held back until the whole blob is verified)
      if (got >= 1.5 * MiB - 1) caughtUp();
    }
    assert.ok(Buffer.concat(parts).equals(bytes));
    assert.equal((await fetch.done).digest, digest);
    assert.deepEqual(atPause, { got: 1.5 * MiB - 1, inFile: MiB }, 'during the stall: the client had 1.5 MiB (but the last byte), the file 1 MiB');
    assert.ok(writes.length <= 5, `${writes.length} writes for 256 pieces (${writes.slice(0, 8).join(', ')}…)`);
    fetch.close();
  });

  it('a body that does not match its digest never gets its last byte to a client, and is not cached', async (t) => {
    const bytes = Buffer.alloc(64 * 1024, 9);
    const claimed = digestOf(Buffer.from('something else'));
    const store = await FsBlobStore.open(await tempRoot(t));
    const fetch = fetchOf(store, bytes, claimed);
    const seen: Buffer[] = [];
    const reader = fetch.reader();
    reader.on('data', (c: Buffer) => seen.push(c));
    await assert.rejects(new Promise((resolve, reject) => reader.once('end', resolve).once('error', reject)), (e: unknown) => (e as { code?: string }).code === 'DIGEST_INVALID');
    await assert.rejects(fetch.done);
    assert.ok(Buffer.concat(seen).length < bytes.length, `the client got all ${bytes.length} bytes of a wrong blob`);
    assert.equal(await store.stat(claimed), undefined);
    fetch.close();
  });
});

/** `size` bytes that differ with their position (a chunk delivered at the wrong offset shows). */
function patterned(size: number, step: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * step) % 251;
  return b;
}

/** An upstream that has the whole body at once and sends it in 64 KiB chunks as fast as it is read. */
function eagerUpstream(bytes: Buffer): Pick<Upstream, 'blob'> {
  return upstreamOf(bytes.length, function* () {
    for (let at = 0; at < bytes.length; at += 64 * 1024) yield bytes.subarray(at, at + 64 * 1024);
  });
}

/** A store whose temp files count the reads made of them (a client served from the file rather than memory). */
async function countingStore(t: { after(fn: () => Promise<void>): void }): Promise<{ store: FsBlobStore; fileReads: () => number; bytesRead: () => number }> {
  let reads = 0;
  let bytes = 0;
  const fs = faultyFs((real) => ({
    read: async (b, o, l, p) => {
      reads++;
      const r = await real.read(b, o, l, p);
      bytes += r.bytesRead;
      return r;
    },
  }));
  const store = await FsBlobStore.open(await tempRoot(t), { fs });
  return { store, fileReads: () => reads, bytesRead: () => bytes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('BlobFetch: a download keeps pace with its fastest client', () => {
  it('a client slower than the upstream is served from memory: the download waits for it, the cache file is never read back', async (t) => {
    const bytes = patterned(24 * 1024 * 1024, 7);
    const digest = digestOf(bytes);
    const { store, fileReads } = await countingStore(t);
    const fetch = new BlobFetch({ store, upstream: eagerUpstream(bytes), repoPath: 'acme/app', digest, timeoutMs: 60_000, resumeAttempts: 0, pacePatienceMs: 30_000 });
    const parts: Buffer[] = [];
    let got = 0;
    let maxLead = 0;
    for await (const c of fetch.reader()) {
      parts.push(c as Buffer);
      got += (c as Buffer).length;
      maxLead = Math.max(maxLead, fetch.received - got);
      await sleep(2); // a client on a slower link than the upstream's
    }
    assert.ok(Buffer.concat(parts).equals(bytes));
    assert.equal((await fetch.done).digest, digest);
    assert.equal(fileReads(), 0, 'the client was served from the cache file, not from memory');
    assert.ok(maxLead <= 6 * 1024 * 1024, `the download ran ${maxLead} bytes ahead of its only client`);
    fetch.close();
  });

  it('a client that joins a download already ahead (a prefetch) reads the file until it has caught up, then from memory', async (t) => {
    const MiB = 1024 * 1024;
    const bytes = patterned(32 * MiB, 11);
    const digest = digestOf(bytes);
    const { store, bytesRead } = await countingStore(t);
    let open!: () => void;
    const joined = new Promise<void>((r) => (open = r));
    // The first 8 MiB arrive before any client asks; the rest once one has.
    const upstream = upstreamOf(bytes.length, async function* () {
      for (let at = 0; at < bytes.length; at += 64 * 1024) {
        if (at === 8 * MiB) await joined;
        yield bytes.subarray(at, at + 64 * 1024);
      }
    });
    const fetch = new BlobFetch({ store, upstream, repoPath: 'acme/app', digest, timeoutMs: 60_000, resumeAttempts: 0, pacePatienceMs: 30_000 });
    while (fetch.received < 8 * MiB) await sleep(5);
    const reader = fetch.reader();
    open();
    const parts: Buffer[] = [];
    for await (const c of reader) {
      parts.push(c as Buffer);
      await sleep(2);
    }
    assert.ok(Buffer.concat(parts).equals(bytes));
    assert.equal((await fetch.done).digest, digest);
    // The 8 MiB it was behind, give or take the recent bytes kept in memory: not the 24 MiB that came after.
    assert.ok(bytesRead() <= 10 * MiB, `the client read ${bytesRead()} bytes from the cache file`);
    fetch.close();
  });

  it('a client that stops reading does not hold the download: it completes and is cached, and the client can read on later', async (t) => {
    const bytes = patterned(12 * 1024 * 1024, 13);
    const digest = digestOf(bytes);
    const { store } = await countingStore(t);
    const fetch = new BlobFetch({ store, upstream: eagerUpstream(bytes), repoPath: 'acme/app', digest, timeoutMs: 60_000, resumeAttempts: 0, pacePatienceMs: 100 });
    const reader = fetch.reader();
    const first = await new Promise<Buffer>((resolve) => reader.once('data', resolve));
    reader.pause();
    assert.equal((await within(fetch.done, 10_000, 'the download waited for a client that stopped reading')).digest, digest);
    assert.equal((await store.stat(digest))?.size, bytes.length);
    const rest: Buffer[] = [];
    reader.on('data', (c: Buffer) => rest.push(c));
    reader.resume();
    await new Promise((resolve) => reader.once('end', resolve));
    assert.ok(Buffer.concat([first, ...rest]).equals(bytes));
    fetch.close();
  });

  it('past the page cache (direct writes): the client gets every byte, the cache holds them, and a disk that fills mid-download still serves the client', async (t) => {
    const bytes = patterned(6 * 1024 * 1024 + 3, 31);
    const digest = digestOf(bytes);
    // Past the page cache from 1 MiB on: the download crosses over mid-way.
    const ok = await FsBlobStore.open(await tempRoot(t), { directWrites: true, directFrom: 1024 * 1024 });
    if (!ok.directWrites.enabled) return t.skip(ok.directWrites.reason);
    const fetch = new BlobFetch({ store: ok, upstream: eagerUpstream(bytes), repoPath: 'acme/app', digest, timeoutMs: 60_000, resumeAttempts: 0 });
    assert.ok((await readAll(fetch.reader())).equals(bytes));
    assert.equal((await fetch.done).digest, digest);
    fetch.close();
    const cached = await ok.read(digest);
    assert.ok((await readAll(cached!)).equals(bytes));

    let directWrites = 0;
    const filling = faultyFs(
      () => ({}),
      (real) => ({
        write: async (b, o, l, p) => {
          if (++directWrites > 2) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return real.write(b, o, l, p);
        },
      }),
    );
    const full = await FsBlobStore.open(await tempRoot(t), { fs: filling, directWrites: true, directFrom: 1024 * 1024 });
    const reported: Error[] = [];
    const degraded = new BlobFetch({ store: full, upstream: eagerUpstream(bytes), repoPath: 'acme/app', digest, timeoutMs: 60_000, resumeAttempts: 0, onCacheWriteError: (e) => reported.push(e) });
    assert.ok((await within(readAll(degraded.reader()), 10_000, 'the client never finished')).equals(bytes));
    await assert.rejects(degraded.done);
    assert.ok(directWrites > 2, 'the disk never filled');
    assert.equal(reported.length, 1);
    assert.equal(await full.stat(digest), undefined);
    degraded.close();
  });
});
