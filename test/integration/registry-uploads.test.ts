import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { sha256 } from '../helpers/oci-image.js';
import { blobStored, stagedUploads, storedBlobs, storedBytes } from '../helpers/test-storage.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';

let w: WharfProcess;
before(async () => {
  w = await startWharf();
});
after(() => w?.stop());

/** An upload session as a client tracks it: always the Location of the last answer. */
interface Session {
  location: string;
  uuid: string | undefined;
}

function abs(location: string): string {
  return new URL(location, `${w.url}/`).toString();
}

function withDigest(location: string, digest: string): string {
  const u = new URL(abs(location));
  u.searchParams.set('digest', digest);
  return u.toString();
}

function assertError(res: HttpResponse, status: number, code: string): void {
  assert.equal(res.status, status, describeResponse(res));
  assert.ok(errorCodes(res).includes(code), `want ${code}: ${describeResponse(res)}`);
}

async function startUpload(repo: string): Promise<Session> {
  const res = await request(`${w.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202, describeResponse(res));
  assert.ok(res.headers.location, 'Location on POST');
  return { location: res.headers.location!, uuid: res.headers['docker-upload-uuid'] };
}

async function patch(s: Session, chunk: Buffer, range?: string): Promise<HttpResponse> {
  const res = await request(abs(s.location), {
    method: 'PATCH',
    headers: { 'content-type': 'application/octet-stream', ...(range !== undefined ? { 'content-range': range } : {}) },
    body: chunk,
  });
  if (res.status === 202 && res.headers.location) s.location = res.headers.location;
  return res;
}

async function blob(repo: string, digest: string): Promise<HttpResponse> {
  return request(`${w.url}/v2/${repo}/blobs/${digest}`);
}

async function pushBlob(repo: string, bytes: Buffer): Promise<string> {
  // POST + PUT, so mount tests do not depend on monolithic POST (tested on its own above)
  const d = sha256(bytes);
  const s = await startUpload(repo);
  const res = await request(withDigest(s.location, d), { method: 'PUT', body: bytes });
  assert.equal(res.status, 201, describeResponse(res));
  return d;
}

describe('uploads', () => {
  it('chunked: three PATCHes with Content-Range, then PUT ?digest= publishes the blob', async () => {
    const bytes = randomBytes(3000 + 17);
    const digest = sha256(bytes);
    const s = await startUpload('up/chunked');
    const cuts = [0, 1000, 2000, bytes.length];
    for (let i = 0; i < 3; i++) {
      const [a, b] = [cuts[i]!, cuts[i + 1]!];
      const res = await patch(s, bytes.subarray(a, b), `${a}-${b - 1}`);
      assert.equal(res.status, 202, `chunk ${i}: ${describeResponse(res)}`);
      assert.equal(res.headers.range, `0-${b - 1}`, `Range after chunk ${i}`);
      assert.ok(res.headers.location, 'Location on PATCH');
      if (s.uuid !== undefined) assert.equal(res.headers['docker-upload-uuid'], s.uuid);
    }
    const put = await request(withDigest(s.location, digest), { method: 'PUT' });
    assert.equal(put.status, 201, describeResponse(put));
    assert.equal(put.headers['docker-content-digest'], digest);
    assert.ok(put.headers.location, 'Location of the blob');
    const follow = await request(abs(put.headers.location!));
    assert.deepEqual(follow.body, bytes, 'the blob Location serves it');

    const g = await blob('up/chunked', digest);
    assert.equal(g.status, 200);
    assert.deepEqual(g.body, bytes);
    assert.deepEqual(await storedBytes(w.dataDir, digest), bytes, 'stored at blobs/sha256/<2>/<64>');
  });

  it('streamed PATCHes without Content-Range append in order', async () => {
    const bytes = randomBytes(5000);
    const s = await startUpload('up/streamed');
    assert.equal((await patch(s, bytes.subarray(0, 1234))).status, 202);
    const second = await patch(s, bytes.subarray(1234));
    assert.equal(second.status, 202, describeResponse(second));
    assert.equal(second.headers.range, '0-4999');
    const put = await request(withDigest(s.location, sha256(bytes)), { method: 'PUT' });
    assert.equal(put.status, 201, describeResponse(put));
    assert.deepEqual((await blob('up/streamed', sha256(bytes))).body, bytes);
  });

  it('PUT ?digest= may carry the final chunk', async () => {
    const bytes = randomBytes(4096);
    const s = await startUpload('up/final');
    assert.equal((await patch(s, bytes.subarray(0, 1500), '0-1499')).status, 202);
    const put = await request(withDigest(s.location, sha256(bytes)), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `1500-${bytes.length - 1}` },
      body: bytes.subarray(1500),
    });
    assert.equal(put.status, 201, describeResponse(put));
    assert.deepEqual((await blob('up/final', sha256(bytes))).body, bytes);
  });

  it('monolithic POST ?digest= stores the blob in one request', async () => {
    const bytes = randomBytes(777);
    const res = await request(`${w.url}/v2/up/mono/blobs/uploads/?digest=${sha256(bytes)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    assert.equal(res.status, 201, describeResponse(res));
    assert.equal(res.headers['docker-content-digest'], sha256(bytes));
    assert.deepEqual((await blob('up/mono', sha256(bytes))).body, bytes);
  });

  it('an out-of-order chunk gets 416 and the session stays usable', async () => {
    const bytes = randomBytes(300);
    const s = await startUpload('up/order');
    assert.equal((await patch(s, bytes.subarray(0, 100), '0-99')).status, 202);
    const skip = await patch(s, bytes.subarray(200, 300), '200-299');
    assertError(skip, 416, 'RANGE_INVALID');
    const overlap = await patch(s, bytes.subarray(50, 150), '50-149');
    assert.equal(overlap.status, 416, `overlapping chunk: ${describeResponse(overlap)}`);

    const status = await request(abs(s.location));
    assert.equal(status.status, 204, describeResponse(status));
    assert.equal(status.headers.range, '0-99', 'rejected chunks wrote nothing');

    assert.equal((await patch(s, bytes.subarray(100, 200), '100-199')).status, 202);
    assert.equal((await patch(s, bytes.subarray(200, 300), '200-299')).status, 202);
    const put = await request(withDigest(s.location, sha256(bytes)), { method: 'PUT' });
    assert.equal(put.status, 201, describeResponse(put));
    assert.deepEqual((await blob('up/order', sha256(bytes))).body, bytes);
  });

  it('GET on the session reports progress with Range, Location and Docker-Upload-UUID', async () => {
    const s = await startUpload('up/status');
    assert.equal((await patch(s, randomBytes(100), '0-99')).status, 202);
    const res = await request(abs(s.location));
    assert.equal(res.status, 204, describeResponse(res));
    assert.equal(res.headers.range, '0-99');
    assert.ok(res.headers.location, 'Location');
    assert.ok(res.headers['docker-upload-uuid'], 'Docker-Upload-UUID');
    assert.equal(res.body.length, 0);
    await request(abs(s.location), { method: 'DELETE' });
  });

  it('cancel: DELETE answers 204; the session is gone and leaves no file behind', async () => {
    const tmpBefore = await stagedUploads(w.dataDir);
    const blobsBefore = await storedBlobs(w.dataDir);
    const bytes = randomBytes(2048);
    const s = await startUpload('up/cancel');
    assert.equal((await patch(s, bytes, `0-${bytes.length - 1}`)).status, 202);
    const url = abs(s.location);
    // otherwise "tmp/ cleaned" below would hold trivially
    assert.ok((await stagedUploads(w.dataDir)).length > tmpBefore.length, 'upload bytes are staged (under tmp/, or as session objects on S3)');

    const del = await request(url, { method: 'DELETE' });
    assert.equal(del.status, 204, describeResponse(del));
    assertError(await patch(s, randomBytes(10)), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await request(url), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await request(withDigest(url, sha256(bytes)), { method: 'PUT' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await request(url, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');

    assert.deepEqual(await stagedUploads(w.dataDir), tmpBefore, 'staged bytes cleaned');
    assert.deepEqual(await storedBlobs(w.dataDir), blobsBefore, 'nothing published');
    assert.equal((await blob('up/cancel', sha256(bytes))).status, 404);
  });

  it('a client that hangs up mid-body publishes nothing and the server keeps serving', async () => {
    const blobsBefore = await storedBlobs(w.dataDir);
    const bytes = randomBytes(64 * 1024);
    const d = sha256(bytes);
    const s = await startUpload('up/hangup');
    const target = new URL(withDigest(s.location, d));
    for (const [method, path] of [
      ['PUT', target.pathname + target.search],
      ['POST', `/v2/up/hangup/blobs/uploads/?digest=${d}`],
    ] as const) {
      await new Promise<void>((resolve, reject) => {
        const sock = connect(w.port, '127.0.0.1', () => {
          sock.write(`${method} ${path} HTTP/1.1\r\nHost: ${w.host}\r\nContent-Type: application/octet-stream\r\n`);
          sock.write(`Content-Length: ${bytes.length}\r\n\r\n`);
          sock.write(bytes.subarray(0, bytes.length / 2), () => setTimeout(() => sock.destroy(), 100));
        });
        sock.on('data', () => {});
        sock.once('close', () => resolve());
        sock.once('error', reject);
      });
    }
    assert.equal((await request(`${w.url}/v2/`)).status, 200, 'still serving');
    assert.equal((await request(`${w.url}/v2/up/hangup/blobs/${d}`, { method: 'HEAD' })).status, 404);
    assert.equal(await blobStored(w.dataDir, d), false);
    assert.deepEqual(await storedBlobs(w.dataDir), blobsBefore);
  });

  it('a digest mismatch on PUT is DIGEST_INVALID and publishes nothing', async () => {
    const blobsBefore = await storedBlobs(w.dataDir);
    const bytes = randomBytes(512);
    const wrong = sha256(Buffer.from('something else'));
    const s = await startUpload('up/mismatch');
    assert.equal((await patch(s, bytes, '0-511')).status, 202);
    assertError(await request(withDigest(s.location, wrong), { method: 'PUT' }), 400, 'DIGEST_INVALID');
    assert.equal((await blob('up/mismatch', wrong)).status, 404);
    assert.equal((await blob('up/mismatch', sha256(bytes))).status, 404);
    assert.equal(await blobStored(w.dataDir, sha256(bytes)), false);
    assert.equal(await blobStored(w.dataDir, wrong), false);
    assert.deepEqual(await storedBlobs(w.dataDir), blobsBefore);
  });
});

describe('cross-repository mount', () => {
  it('mounts a blob the from-repository has: 201, readable in the target', async () => {
    const bytes = randomBytes(1500);
    const d = await pushBlob('mnt/src', bytes);
    const res = await request(`${w.url}/v2/mnt/dst/blobs/uploads/?mount=${d}&from=mnt/src`, { method: 'POST' });
    assert.equal(res.status, 201, describeResponse(res));
    assert.equal(res.headers['docker-content-digest'], d);
    assert.ok(res.headers.location, 'Location of the mounted blob');
    const g = await blob('mnt/dst', d);
    assert.equal(g.status, 200, describeResponse(g));
    assert.deepEqual(g.body, bytes);
  });

  it('falls back to a 202 upload session when from lacks the blob', async () => {
    await pushBlob('mnt/src2', randomBytes(100)); // from exists, just not with this blob
    const bytes = randomBytes(900);
    const d = sha256(bytes);
    const res = await request(`${w.url}/v2/mnt/dst2/blobs/uploads/?mount=${d}&from=mnt/src2`, { method: 'POST' });
    assert.equal(res.status, 202, describeResponse(res));
    assert.ok(res.headers.location, 'session Location');
    // the session is real: the client uploads through it
    const put = await request(withDigest(res.headers.location!, d), { method: 'PUT', body: bytes });
    assert.equal(put.status, 201, describeResponse(put));
    assert.deepEqual((await blob('mnt/dst2', d)).body, bytes);
  });

  it('a blob held only by a repository not named in from stays out of reach', async () => {
    const secret = randomBytes(600);
    const d = await pushBlob('mnt/secret', secret);
    await pushBlob('mnt/public', randomBytes(50));
    const res = await request(`${w.url}/v2/mnt/thief/blobs/uploads/?mount=${d}&from=mnt/public`, { method: 'POST' });
    assert.equal(res.status, 202, `no mount without a link in from: ${describeResponse(res)}`);
    await request(abs(res.headers.location ?? '/'), { method: 'DELETE' });
    const g = await blob('mnt/thief', d);
    assertError(g, 404, 'BLOB_UNKNOWN');
    assertError(await blob('mnt/public', d), 404, 'BLOB_UNKNOWN');
    // nor by naming a repository that does not exist at all
    const ghost = await request(`${w.url}/v2/mnt/thief/blobs/uploads/?mount=${d}&from=mnt/nobody`, { method: 'POST' });
    assert.equal(ghost.status, 202, describeResponse(ghost));
    await request(abs(ghost.headers.location ?? '/'), { method: 'DELETE' });
    assert.equal((await blob('mnt/thief', d)).status, 404);
    assert.deepEqual((await blob('mnt/secret', d)).body, secret, 'the owner still has it');
  });
});

describe('restart', () => {
  it('an upload started before a graceful restart resumes after it', async () => {
    const bytes = randomBytes(6000);
    const s = await startUpload('up/resume');
    assert.equal((await patch(s, bytes.subarray(0, 2500), '0-2499')).status, 202);

    await w.restart();
    const exit = w.lastExit();

    const status = await request(abs(s.location));
    assert.equal(status.status, 204, describeResponse(status));
    assert.equal(status.headers.range, '0-2499');
    const rest = await patch(s, bytes.subarray(2500), `2500-${bytes.length - 1}`);
    assert.equal(rest.status, 202, describeResponse(rest));
    const put = await request(withDigest(s.location, sha256(bytes)), { method: 'PUT' });
    assert.equal(put.status, 201, describeResponse(put));
    assert.deepEqual((await blob('up/resume', sha256(bytes))).body, bytes);
    assert.deepEqual(await storedBytes(w.dataDir, sha256(bytes)), bytes);
    // checked last so a shutdown problem does not hide whether the upload survived
    assert.equal(exit?.forced, false, `SIGTERM must stop wharf (exit ${JSON.stringify(exit)})`);
    assert.equal(exit?.code, 0, `graceful exit code (exit ${JSON.stringify(exit)})`);
  });
});
