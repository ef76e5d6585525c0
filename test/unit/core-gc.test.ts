import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { digestOf, type Digest } from '../../src/oci/index.js';
import { collectGarbage, type GcDeps } from '../../src/core/gc.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';
import { EmbeddedMetadataStore } from '../../src/store/meta/embedded.js';

type T = { after(fn: () => unknown): void };

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const GRACE = 10 * MINUTE;
const EXPIRY = 24 * HOUR;

async function world(t: T) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-gc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // File times are real, so the injected clock starts at the real time and the test moves it forward.
  const clock = { now: Date.now() };
  const now = () => clock.now;
  const store = await FsBlobStore.open(join(dir, 'blobs'), { now });
  const meta = await EmbeddedMetadataStore.open(join(dir, 'meta'), { now });
  t.after(() => meta.close());
  const gc = (dryRun: boolean, over: Partial<GcDeps> = {}) =>
    collectGarbage({ store, meta, now, uploadExpiryMs: EXPIRY, tempGraceMs: GRACE, dryRun, ...over });

  async function put(content: string): Promise<Digest> {
    const d = digestOf(content);
    const w = await store.create();
    await w.write(Readable.from([Buffer.from(content)]));
    await w.commit(d);
    await w.release();
    return d;
  }
  /** An uncommitted temp file holding `content`, as an interrupted upload leaves it. */
  async function temp(content: string): Promise<string> {
    const w = await store.create();
    await w.write(Readable.from([Buffer.from(content)]));
    await w.release();
    return w.id;
  }
  async function readable(d: Digest): Promise<string | undefined> {
    const s = await store.read(d);
    return s && text(s);
  }
  const tempExists = (id: string) => access(store.tempPath(id)).then(() => true, () => false);
  return { store, meta, clock, gc, put, temp, readable, tempExists };
}

describe('collectGarbage', () => {
  it('lists exactly the orphans in a dry run, removes exactly those in a real run, and keeps everything linked', async (t) => {
    const w = await world(t);
    // Linked content: a local blob, and a mirrored manifest whose config is linked and whose layer is only referenced.
    const local = await w.put('local layer');
    await w.meta.link('team/app', local, { kind: 'blob', size: 11, origin: 'local', linkedAt: w.clock.now });
    const config = await w.put('config');
    const layer = await w.put('referenced, never linked');
    await w.meta.link('docker.io/library/a', config, { kind: 'blob', size: 6, origin: 'upstream', linkedAt: w.clock.now });
    const manifest = await w.put('{"manifest":1}');
    await w.meta.link('docker.io/library/a', manifest, { kind: 'manifest', size: 14, origin: 'upstream', refs: [config, layer], linkedAt: w.clock.now });
    // Orphans: an unreferenced blob, an idle upload with its temp file, a temp file nobody owns.
    const orphan = await w.put('nobody links me');
    await w.meta.recordAccess(new Map([[orphan, w.clock.now]]));
    const idleTemp = await w.temp('12345');
    const stray = await w.temp('stray bytes');
    // A live upload and its temp file must survive.
    const liveTemp = await w.temp('abc');

    w.clock.now += 2 * EXPIRY;
    await w.meta.createUpload({ id: 'idle', repo: 'team/app', writerId: idleTemp, size: 5, startedAt: w.clock.now - EXPIRY - HOUR, updatedAt: w.clock.now - EXPIRY - 1 });
    await w.meta.createUpload({ id: 'live', repo: 'team/app', writerId: liveTemp, size: 3, startedAt: w.clock.now - EXPIRY - HOUR, updatedAt: w.clock.now - HOUR });

    const dry = await w.gc(true);
    assert.deepEqual(dry, {
      blobs: [{ digest: orphan, size: 15 }],
      uploads: [{ id: 'idle', repo: 'team/app', size: 5 }],
      temps: [stray],
      freedBytes: 15 + 5, // a stray temp file's size is only known once removed
      dryRun: true,
    });
    assert.equal(await w.readable(orphan), 'nobody links me');
    assert.ok(await w.meta.getUpload('idle'));
    assert.ok(await w.tempExists(idleTemp));
    assert.ok(await w.tempExists(stray));

    const real = await w.gc(false);
    assert.deepEqual({ ...real, dryRun: true, freedBytes: 0 }, { ...dry, freedBytes: 0 });
    assert.equal(real.dryRun, false);
    assert.equal(real.freedBytes, 15 + 5 + 11);
    assert.equal(await w.store.stat(orphan), undefined);
    assert.equal(await w.meta.lastAccess(orphan), undefined);
    assert.equal(await w.meta.getUpload('idle'), undefined);
    assert.equal(await w.tempExists(idleTemp), false);
    assert.equal(await w.tempExists(stray), false);

    assert.ok(await w.meta.getUpload('live'));
    assert.ok(await w.tempExists(liveTemp));
    const resumed = await w.store.resume(liveTemp);
    assert.equal(resumed?.size, 3);
    await resumed?.release();
    assert.equal(await w.readable(local), 'local layer');
    assert.equal(await w.readable(config), 'config');
    assert.equal(await w.readable(layer), 'referenced, never linked');
    assert.equal(await w.readable(manifest), '{"manifest":1}');

    assert.deepEqual(await w.gc(false), { blobs: [], uploads: [], temps: [], freedBytes: 0, dryRun: false });
  });

  it('spares blobs and temp files younger than the grace period (a push between commit and link)', async (t) => {
    const w = await world(t);
    const justCommitted = await w.put('pushed a moment ago');
    const justWritten = await w.temp('half an upload');
    w.clock.now += GRACE / 2;
    assert.deepEqual(await w.gc(false), { blobs: [], uploads: [], temps: [], freedBytes: 0, dryRun: false });
    assert.equal(await w.readable(justCommitted), 'pushed a moment ago');
    assert.ok(await w.tempExists(justWritten));

    // The push never linked it: once past the grace period it is garbage.
    w.clock.now += GRACE;
    const later = await w.gc(false);
    assert.deepEqual(later.blobs, [{ digest: justCommitted, size: 19 }]);
    assert.deepEqual(later.temps, [justWritten]);
  });

  it('spares an old blob that was read within the grace period', async (t) => {
    const w = await world(t);
    const d = await w.put('old but just read');
    w.clock.now += 2 * GRACE;
    await w.meta.recordAccess(new Map([[d, w.clock.now - 1]]));
    assert.deepEqual((await w.gc(false)).blobs, []);
    assert.equal(await w.readable(d), 'old but just read');
  });

  it('an upload idle for less than the expiry keeps its session and file', async (t) => {
    const w = await world(t);
    const id = await w.temp('xyz');
    w.clock.now += EXPIRY;
    await w.meta.createUpload({ id: 'slow', repo: 'r', writerId: id, size: 3, startedAt: 0, updatedAt: w.clock.now - EXPIRY + MINUTE });
    const rep = await w.gc(false);
    assert.deepEqual(rep.uploads, []);
    assert.deepEqual(rep.temps, []);
    assert.ok(await w.meta.getUpload('slow'));
    assert.ok(await w.tempExists(id));
  });
});
