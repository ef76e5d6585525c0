/**
 * A PATCH that fails (client cut off, body shorter than its Content-Length, disk full) leaves its upload
 * session exactly at the last acknowledged offset (issue 16 item 4): the status GET tells the truth, the
 * chunk can be sent again, and the partial bytes can never be published.
 *
 * Distribution 2.8 instead ends the session: its next answer for it is 404 BLOB_UPLOAD_INVALID (the state in
 * its Location no longer matches the file). Both keep partial bytes from being adopted; wharf keeps the
 * acknowledged part so a resuming client loses nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { sha256 } from '../helpers/oci-image.js';
import { rawRequest } from '../helpers/raw-http.js';
import { onS3, receivingBytes, sessionBytes } from '../helpers/test-storage.js';
import { smallDisk, unmountTmpfs } from '../helpers/tmpfs.js';
import { describeResponse, onDisk, startWharf, type WharfProcess } from '../helpers/wharf.js';

const MiB = 1 << 20;

let w: WharfProcess;
before(async () => {
  w = await startWharf();
});
after(() => w?.stop());

interface Session {
  server: WharfProcess;
  /** path and query of the session's Location */
  path: string;
  uuid: string;
}

async function startUpload(server: WharfProcess, repo: string): Promise<Session> {
  const res = await request(`${server.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202, describeResponse(res));
  const u = new URL(res.headers.location!, server.url);
  return { server, path: u.pathname + u.search, uuid: res.headers['docker-upload-uuid']! };
}

function patch(s: Session, bytes: Buffer, at: number): Promise<HttpResponse> {
  return request(`${s.server.url}${s.path}`, {
    method: 'PATCH',
    body: bytes,
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${at}-${at + bytes.length - 1}` },
  });
}

function status(s: Session): Promise<HttpResponse> {
  return request(`${s.server.url}${s.path}`);
}

function put(s: Session, digest: string): Promise<HttpResponse> {
  const u = new URL(`${s.server.url}${s.path}`);
  u.searchParams.set('digest', digest);
  return request(u.toString(), { method: 'PUT' });
}

/** The bytes the session holds (its file, or its stored segments on S3). */
const tempSize = (s: Session): Promise<number> => sessionBytes(s.server.dataDir, s.uuid);
/** A PATCH still being received has put at least `n` bytes on wharf's disk. */
const receiving = (s: Session, n: number): Promise<boolean> => receivingBytes(s.server.dataDir, s.uuid, n);

/** Polls `cond` every 20 ms for up to `ms`; false when it never held. */
async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (await cond()) return true;
  return false;
}

/** After a failed PATCH: the session is at `acked` bytes, takes the next chunk there, and publishes the whole blob. */
async function assertResumesAt(s: Session, acked: Buffer, rest: Buffer, opts: { cutAtOnce: boolean } = { cutAtOnce: true }): Promise<void> {
  // A process that died mid-PATCH cuts nothing: its successor does, at the session's next request.
  if (opts.cutAtOnce) assert.ok(await until(async () => (await tempSize(s)) === acked.length), `the session's file is cut back to ${acked.length} bytes (now ${await tempSize(s)})`);
  // On S3 the stored segments never held the cut bytes: the failed request is over once it has stored what was
  // acknowledged and removed its local temp file (the last thing it does; until then the session is busy).
  if (opts.cutAtOnce && onS3) assert.ok(await until(async () => !(await receiving(s, 0))), 'the failed PATCH has let go of the session');
  const st = await status(s);
  assert.equal(st.status, 204, describeResponse(st));
  assert.equal(st.headers.range, `0-${acked.length - 1}`, 'status GET reports the acknowledged bytes only');
  const next = await patch(s, rest, acked.length);
  assert.equal(next.status, 202, describeResponse(next));
  assert.equal(next.headers.range, `0-${acked.length + rest.length - 1}`, 'the next chunk continues at the acknowledged offset');
  const whole = Buffer.concat([acked, rest]);
  const done = await put(s, sha256(whole));
  assert.equal(done.status, 201, describeResponse(done));
  const got = await request(`${s.server.url}${s.path.replace(/\/uploads\/.*$/, `/${sha256(whole)}`)}`);
  assert.equal(got.status, 200, describeResponse(got));
  assert.equal(sha256(got.body), sha256(whole));
}

describe('a failed PATCH', () => {
  it('cut off by the client: the session stays at the acknowledged offset', async () => {
    const s = await startUpload(w, 'team/cut');
    const first = randomBytes(MiB);
    assert.equal((await patch(s, first, 0)).status, 202);
    const partial = randomBytes(MiB);
    const raw = await rawRequest(w.port, 'PATCH', s.path, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': 2 * MiB,
      'Content-Range': `${MiB}-${3 * MiB - 1}`,
    });
    await raw.send(partial);
    assert.ok(await until(() => receiving(s, onS3 ? MiB : 2 * MiB)), 'the partial bytes reached the file');
    raw.cut();
    await assertResumesAt(s, first, randomBytes(MiB));
  });

  it('ended by kill -9: after a restart the session is at the acknowledged offset', async () => {
    const own = await startWharf();
    try {
      const s = await startUpload(own, 'team/killed');
      const first = randomBytes(MiB);
      assert.equal((await patch(s, first, 0)).status, 202);
      const raw = await rawRequest(own.port, 'PATCH', s.path, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': 2 * MiB,
        'Content-Range': `${MiB}-${3 * MiB - 1}`,
      });
      await raw.send(randomBytes(MiB));
      assert.ok(await until(() => receiving(s, onS3 ? MiB : 2 * MiB)), 'the partial bytes reached the file');
      await own.kill();
      raw.cut();
      await own.restart();
      await assertResumesAt(s, first, randomBytes(MiB), { cutAtOnce: false });
    } finally {
      await own.stop();
    }
  });

  it('with 500 of 1000 declared bytes sent: PUT with the digest of those bytes publishes nothing', async () => {
    const s = await startUpload(w, 'team/short');
    const sent = randomBytes(500);
    const raw = await rawRequest(w.port, 'PATCH', s.path, { 'Content-Type': 'application/octet-stream', 'Content-Length': 1000 });
    await raw.send(sent);
    assert.ok(await until(() => receiving(s, sent.length)), 'the partial bytes reached the file');
    raw.cut();
    assert.equal(await raw.answer, undefined, 'the PATCH was never acknowledged');
    const st = await status(s);
    if (st.status === 204) assert.equal(st.headers.range, '0-0', 'status GET reports no bytes');
    else assert.equal(st.status, 404, describeResponse(st));
    const done = await put(s, sha256(sent));
    assert.notEqual(done.status, 201, `PUT of the partial bytes' digest: ${describeResponse(done)}`);
    assert.equal((await request(`${w.url}/v2/team/short/blobs/${sha256(sent)}`, { method: 'HEAD' })).status, 404);
    assert.equal(await onDisk(w.dataDir, sha256(sent)), false);
  });

  it('on a full disk (507): the session stays at the acknowledged offset', async (t) => {
    const dir = await smallDisk(t, 'wharf-upload-enospc', '4m');
    if (dir === undefined) return;
    let small: WharfProcess | undefined;
    try {
      small = await startWharf({ dataDir: dir });
      const s = await startUpload(small, 'team/full');
      const first = randomBytes(MiB);
      assert.equal((await patch(s, first, 0)).status, 202);
      const tooBig = await patch(s, randomBytes(6 * MiB), MiB);
      assert.equal(tooBig.status, 507, describeResponse(tooBig));
      await assertResumesAt(s, first, randomBytes(MiB));
    } finally {
      await small?.stop();
      await unmountTmpfs(dir);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
