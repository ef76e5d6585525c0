import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { buffer, text } from 'node:stream/consumers';
import { digestOf, isRegistryError, type Digest } from '../../src/oci/index.js';
import { S3BlobStore } from '../../src/store/blob/s3-blob-store.js';
import type { S3Options } from '../../src/store/blob/s3-client.js';
import { startSwiftS3, type SwiftS3 } from '../helpers/swift-s3.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

const MiB = 1 << 20;
const BUCKET = 'wharf-store';

function chunks(...parts: Array<string | Buffer>): AsyncIterable<Uint8Array> {
  return Readable.from(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}

function hasCode(code: string) {
  return (e: unknown) => isRegistryError(e) && e.code === code;
}

/** The blob store against a real S3 implementation (Swift's s3api): multipart, ranges, DeleteObjects, presign. */
describe('S3BlobStore on Swift s3api', () => {
  let swift: SwiftS3;
  let dirs: TempDir;
  let n = 0;
  const requests: string[] = [];

  before(async () => {
    swift = await startSwiftS3();
    await swift.createBucket(BUCKET);
    dirs = await tempDir('wharf-s3-local-');
  });
  after(async () => {
    await swift?.stop();
    await dirs?.cleanup();
  });

  /** A store on its own key prefix; `replica` picks its local directory (another replica shares only the bucket). */
  async function open(prefix: string, replica = 'a', extra: Partial<S3Options> = {}): Promise<S3BlobStore> {
    return S3BlobStore.open({
      s3: {
        endpoint: swift.endpoint,
        region: 'us-east-1',
        bucket: BUCKET,
        prefix,
        forcePathStyle: true,
        accessKeyId: swift.accessKeyId,
        secretAccessKey: swift.secretAccessKey,
        partSize: 5 * MiB,
        redirect: false,
        redirectExpiry: 60_000,
        ...extra,
      },
      localDir: `${dirs.path}/${prefix}${replica}`,
      observer: { storageRequest: (op, status) => requests.push(`${op} ${status}`), accessDenied() {} },
    });
  }
  const fresh = () => `t${++n}/`;

  async function nothingLeft(store: S3BlobStore, prefix: string): Promise<void> {
    const keys: string[] = [];
    for await (const o of store.bucket.list(prefix)) keys.push(o.key);
    assert.deepEqual(keys, [], 'no objects under the prefix');
    const mpus: string[] = [];
    for await (const u of store.bucket.listMultipart(prefix)) mpus.push(u.key);
    assert.deepEqual(mpus, [], 'no multipart uploads in progress');
  }

  it('commits verified content, stats, lists and reads it back, whole and in ranges', async () => {
    const p = fresh();
    const store = await open(p);
    const w = await store.create();
    assert.equal(await w.write(chunks('hello ', 'world')), 11);
    const d = digestOf('hello world');
    assert.deepEqual(await w.commit(d, 11), { mediaType: 'application/octet-stream', digest: d, size: 11 });
    await w.cancel();
    assert.deepEqual(await store.stat(d), { digest: d, size: 11 });
    assert.equal(typeof (await store.statTime(d)), 'number');
    assert.equal(await text((await store.read(d))!), 'hello world');
    assert.equal(await text((await store.read(d, { start: 6, end: 10 }))!), 'world');
    await assert.rejects(store.read(d, { start: 5, end: 11 }), hasCode('RANGE_INVALID'));
    await assert.rejects(store.read(d, { start: 20, end: 30 }), hasCode('RANGE_INVALID'));
    const listed = [];
    for await (const b of store.list()) listed.push(b);
    assert.deepEqual(listed, [{ digest: d, size: 11 }]);
    assert.equal(await store.read(digestOf('absent')), undefined);
    assert.equal(await store.stat(digestOf('absent')), undefined);
  });

  it('a digest or size mismatch throws and leaves nothing in the bucket', async () => {
    const p = fresh();
    const store = await open(p);
    const w = await store.create();
    await w.write(chunks('not what was promised'));
    await assert.rejects(w.commit(digestOf('expected')), hasCode('DIGEST_INVALID'));
    const w2 = await store.create();
    await w2.write(chunks('12345'));
    await assert.rejects(w2.commit(digestOf('12345'), 4), hasCode('SIZE_INVALID'));
    await nothingLeft(store, p);
    assert.deepEqual(await readdir(`${dirs.path}/${p}a`), [], 'no local temp files');
  });

  it('a download streams into a multipart upload for its key, invisible until the digest matches', async () => {
    const p = fresh();
    const store = await open(p);
    const body = randomBytes(12 * MiB + 123);
    const d = digestOf(body);
    const w = await store.create(undefined, { digest: d });
    await w.write(chunks(body.subarray(0, 6 * MiB), body.subarray(6 * MiB, 11 * MiB), body.subarray(11 * MiB)));
    // Parts went up while writing; nothing is visible yet, clients read what arrived from the writer.
    let inProgress: string[] = [];
    for (let i = 0; i < 100 && inProgress.length === 0; i++) {
      for await (const u of store.bucket.listMultipart(p)) inProgress.push(u.key);
      if (inProgress.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(inProgress, [store.blobKey(d)]);
    assert.equal(await store.stat(d), undefined);
    assert.deepEqual(await w.readAt(6 * MiB - 3, 6), body.subarray(6 * MiB - 3, 6 * MiB + 3));
    await w.verify(d, body.length);
    await w.commit(d, body.length);
    assert.deepEqual(await w.readAt(0, 4), body.subarray(0, 4), 'readers finish from the writer after commit');
    await w.release();
    assert.equal((await store.stat(d))?.size, body.length);
    assert.ok((await buffer((await store.read(d))!)).equals(body));
    assert.ok((await buffer((await store.read(d, { start: 5 * MiB - 1, end: 5 * MiB + 1 }))!)).equals(body.subarray(5 * MiB - 1, 5 * MiB + 2)));
    inProgress = [];
    for await (const u of store.bucket.listMultipart(p)) inProgress.push(u.key);
    assert.deepEqual(inProgress, []);

    // The same with bytes that do not match: aborted, nothing visible, no upload left.
    const bad = Buffer.from(body);
    bad[7 * MiB] = bad[7 * MiB]! ^ 1;
    const w2 = await store.create(undefined, { digest: digestOf('other') as Digest });
    await w2.write(chunks(bad));
    await assert.rejects(w2.commit(digestOf('other')), hasCode('DIGEST_INVALID'));
    assert.equal(await store.stat(digestOf('other')), undefined);
    for await (const u of store.bucket.listMultipart(p)) assert.fail(`multipart upload left: ${u.key}`);
  });

  it('a chunked upload continues on another replica (parts of at least 5 MiB) and publishes what is stored', async () => {
    const p = fresh();
    const a = await open(p, 'a');
    const b = await open(p, 'b');
    const body = randomBytes(11 * MiB + 7);
    const d = digestOf(body);
    const w = await a.create();
    await w.write(chunks(body.subarray(0, 1000)));
    await w.release();
    const w2 = (await b.resume(w.id))!;
    assert.equal(w2.size, 1000);
    await w2.write(chunks(body.subarray(1000, 3 * MiB)));
    await w2.release();
    const w3 = (await a.resume(w.id))!;
    assert.equal(w3.size, 3 * MiB);
    assert.deepEqual(await w3.readAt(999, 2), body.subarray(999, 1001), 'earlier bytes read back from the bucket');
    await w3.write(chunks(body.subarray(3 * MiB)));
    assert.equal((await w3.commit(d, body.length)).size, body.length);
    await w3.release();
    assert.ok((await buffer((await a.read(d))!)).equals(body));
    // The session's objects are gone; only the blob remains.
    const keys: string[] = [];
    for await (const o of a.bucket.list(p)) keys.push(o.key);
    assert.deepEqual(keys, [a.blobKey(d)]);
    assert.equal(await a.resume(w.id), undefined);
  });

  it('the bytes of an upload are in the bucket once write() resolves, before any release (the session may then count them)', async () => {
    const p = fresh();
    const a = await open(p, 'a');
    const b = await open(p, 'b');
    const w = await a.create();
    await w.write(chunks('acknowledged'));
    // The replica that wrote them dies here without releasing; another one continues the session.
    const r = (await b.resume(w.id))!;
    assert.equal(r.size, 12);
    await r.write(chunks('!'));
    assert.equal((await r.commit(digestOf('acknowledged!'), 13)).size, 13);
    await w.cancel();
  });

  it('a resumed writer publishes the stored bytes, never a hash it did not compute from them', async () => {
    const p = fresh();
    const store = await open(p);
    const w = await store.create();
    await w.write(chunks('good bytes'));
    await w.release();
    // Another process rewrites the stored segment behind the session's back.
    const segKey = `${p}uploads/${w.id}/${'0'.padStart(16, '0')}`;
    await store.bucket.put(segKey, Buffer.from('evil bytes'));
    const resumed = (await store.resume(w.id))!;
    await assert.rejects(resumed.commit(digestOf('good bytes')), hasCode('DIGEST_INVALID'));
    assert.equal(await store.stat(digestOf('good bytes')), undefined);
    await nothingLeft(store, p);
  });

  it('truncate cuts stored segments and local bytes back; commit hashes what is left', async () => {
    const p = fresh();
    const store = await open(p);
    const w = await store.create();
    await w.write(chunks('0123456789'));
    await w.release();
    const r = (await store.resume(w.id))!;
    await r.write(chunks('abcdef'));
    await r.truncate(12);
    assert.equal(r.size, 12);
    await r.truncate(4);
    assert.equal(r.size, 4);
    await r.write(chunks('XY'));
    await r.release();
    const r2 = (await store.resume(w.id))!;
    assert.equal(r2.size, 6);
    assert.equal((await r2.commit(digestOf('0123XY'), 6)).size, 6);
    assert.equal(await text((await store.read(digestOf('0123XY')))!), '0123XY');
  });

  it('delete (DeleteObjects with Content-MD5) removes a blob; quarantine moves it aside', async () => {
    const p = fresh();
    const store = await open(p);
    for (const s of ['one', 'two']) {
      const w = await store.create();
      await w.write(chunks(s));
      await w.commit(digestOf(s));
      await w.release();
    }
    assert.equal(await store.delete(digestOf('one')), true);
    assert.equal(await store.delete(digestOf('one')), false);
    assert.equal(await store.stat(digestOf('one')), undefined);
    assert.equal(await store.quarantine(digestOf('two')), true);
    assert.equal(await store.stat(digestOf('two')), undefined);
    const keys: string[] = [];
    for await (const o of store.bucket.list(p)) keys.push(o.key.slice(p.length));
    assert.deepEqual(keys, [`quarantine/sha256-${digestOf('two').slice(7)}`]);
  });

  it('sweepTemp aborts the multipart upload and removes the files of a writer that died mid-download', async () => {
    const p = fresh();
    const store = await open(p);
    const body = randomBytes(6 * MiB);
    const d = digestOf(body);
    const w = await store.create(undefined, { digest: d });
    await w.write(chunks(body));
    let found = 0;
    for (let i = 0; i < 100 && found === 0; i++) {
      for await (const _ of store.bucket.listMultipart(p)) found++;
      if (found === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(found, 1);
    // The process dies: nobody cancels. A new process (a new store on the same bucket) sweeps.
    const after = await open(p, 'b');
    const swept = await after.sweepTemp(0, () => false);
    assert.deepEqual(swept.removed, [`multipart:${store.blobKey(d).slice(p.length)}`]);
    await nothingLeft(after, p);
    assert.equal(await after.stat(d), undefined);
    await w.cancel();
  });

  it('sweepTemp spares a download started long ago that is still sending parts', async () => {
    const p = fresh();
    const store = await open(p);
    const body = randomBytes(10 * MiB);
    const d = digestOf(body);
    const t0 = Date.now();
    const w = await store.create(undefined, { digest: d });
    await w.write(chunks(body.subarray(0, 5 * MiB)));
    await new Promise((r) => setTimeout(r, 4000));
    await w.write(chunks(body.subarray(5 * MiB)));
    // Wait until the second part is stored (its time is the upload's last activity).
    let last: number | undefined;
    for (let i = 0; i < 200; i++) {
      const [u] = await (async () => {
        const out = [];
        for await (const x of store.bucket.listMultipart(p)) out.push(x);
        return out;
      })();
      last = u ? await store.bucket.lastActivity(u.key, u.uploadId, u.initiated) : undefined;
      if (last !== undefined && last > t0 + 3500) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(last !== undefined && last > t0 + 3500, 'second part stored');
    // Started more than the grace ago, but touched within it: live.
    const swept = await store.sweepTemp(Date.now() - (t0 + 2000), () => false);
    assert.deepEqual(swept.removed, []);
    await w.commit(d, body.length);
    await w.release();
    assert.equal((await store.stat(d))?.size, body.length);
  });

  it('sweepTemp keeps a live upload session and removes an abandoned one', async () => {
    const p = fresh();
    const store = await open(p);
    const live = await store.create();
    await live.write(chunks('live'));
    await live.release();
    const dead = await store.create();
    await dead.write(chunks('dead'));
    await dead.release();
    const swept = await store.sweepTemp(0, (id) => id === live.id);
    assert.deepEqual(swept.removed, [dead.id]);
    assert.equal(swept.bytes, 4);
    assert.equal((await store.resume(live.id))?.size, 4);
    assert.equal(await store.resume(dead.id), undefined);
  });

  it('a presigned URL serves the blob to a plain HTTP client', async () => {
    const p = fresh();
    const store = await open(p);
    const w = await store.create();
    await w.write(chunks('presigned'));
    await w.commit(digestOf('presigned'));
    await w.release();
    const url = await store.presign(digestOf('presigned'), 60_000);
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'presigned');
    const ranged = await fetch(url, { headers: { Range: 'bytes=3-5' } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), 'sig');
  });

  it('counts requests by operation and status', () => {
    for (const op of ['put', 'head', 'get', 'list', 'delete', 'create_multipart', 'upload_part', 'complete_multipart', 'abort_multipart', 'list_multipart']) {
      assert.ok(requests.includes(`${op} 200`), `${op} 200 counted`);
    }
    assert.ok(requests.includes('head 404'));
  });
});
