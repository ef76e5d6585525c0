/**
 * Request bodies above the configured limits are refused while they stream in (issue 7): a declared
 * Content-Length over the limit is answered before any body byte is sent; a chunked body is cut once
 * it crosses the limit. The client sees the OCI error long before it has sent everything, wharf's
 * memory does not grow with the body, and nothing of it becomes visible.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { sha256 } from '../helpers/oci-image.js';
import { describeResponse, errorCodes, filesUnder, startWharf, type WharfProcess } from '../helpers/wharf.js';

const MAX_MANIFEST = 64 * 1024;
const MAX_BLOB = 1024 * 1024;
/** What a hostile client offers: far more than any limit here. */
const OFFER = 100 * 1024 * 1024;
const CHUNK = 16 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let w: WharfProcess;

before(async () => {
  w = await startWharf({ config: { upstreams: [], limits: { maxManifestBytes: MAX_MANIFEST, maxBlobBytes: MAX_BLOB }, log: { level: 'warn' } } });
});
after(() => w?.stop());

interface Streamed {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** body bytes the client had handed to the socket when the first response byte arrived */
  sentAtAnswer: number;
}

/**
 * Sends a request head, then body chunks of CHUNK bytes every `intervalMs` (chunked encoding, or
 * raw after a declared Content-Length) until `total` bytes or the first byte of an answer; then reads
 * the answer. A plain socket, so the client keeps sending while wharf decides, as a real one would.
 */
function streamUpload(method: string, path: string, opts: { total: number; declare?: number; intervalMs: number; headers?: Record<string, string> }): Promise<Streamed> {
  return new Promise((resolve, reject) => {
    const sock = connect(w.port, '127.0.0.1');
    const got: Buffer[] = [];
    let sent = 0;
    let sentAtAnswer = -1;
    let finished = false;
    const timer = setTimeout(() => finish(new Error(`no complete answer within 60 s (sent ${sent} bytes)`)), 60_000);
    const finish = (err?: Error): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      sock.destroy();
      const all = Buffer.concat(got);
      const cut = all.indexOf('\r\n\r\n');
      if (err && cut < 0) return reject(err);
      if (cut < 0) return reject(new Error(`no response head (sent ${sent} bytes): ${JSON.stringify(all.toString('latin1').slice(0, 200))}`));
      const [statusLine, ...lines] = all.subarray(0, cut).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers, body: all.subarray(cut + 4), sentAtAnswer });
    };
    const complete = (): boolean => {
      const all = Buffer.concat(got);
      const cut = all.indexOf('\r\n\r\n');
      if (cut < 0) return false;
      const len = /\r\ncontent-length: *(\d+)/i.exec(all.subarray(0, cut).toString('latin1'));
      return len !== null && all.length - cut - 4 >= Number(len[1]);
    };
    sock.on('data', (b: Buffer) => {
      if (sentAtAnswer < 0) sentAtAnswer = sent;
      got.push(b);
      if (complete()) finish();
    });
    sock.once('end', () => finish());
    // Writing into a socket wharf has closed fails (EPIPE/ECONNRESET): the answer is what counts, and a
    // client (curl, Go's) still reads what arrived before the close, so the error only counts without one.
    let writeError: Error | undefined;
    sock.on('error', (e) => (writeError ??= e));
    sock.once('close', () => finish(writeError));
    sock.once('connect', async () => {
      const chunked = opts.declare === undefined;
      const head = [
        `${method} ${path} HTTP/1.1`,
        `Host: 127.0.0.1:${w.port}`,
        chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${opts.declare}`,
        ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      ];
      sock.write(`${head.join('\r\n')}\r\n\r\n`);
      const piece = Buffer.alloc(CHUNK, 0x7b);
      // Never more than declared: bytes past a Content-Length would be read as a next (bad) request.
      const total = chunked ? opts.total : Math.min(opts.total, opts.declare!);
      while (!finished && sentAtAnswer < 0 && sent < total) {
        const part = chunked ? piece : piece.subarray(0, Math.min(CHUNK, total - sent));
        const ok = chunked ? sock.write(`${CHUNK.toString(16)}\r\n`) && sock.write(piece) && sock.write('\r\n') : sock.write(part);
        sent += part.length;
        if (!ok) await new Promise<void>((r) => { sock.once('drain', r); sock.once('close', r); });
        await new Promise((r) => setTimeout(r, opts.intervalMs));
      }
      if (!finished && sentAtAnswer < 0 && chunked) sock.write('0\r\n\r\n');
    });
  });
}

async function rssKiB(): Promise<number> {
  const status = await readFile(`/proc/${w.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
}

async function openSession(repo: string): Promise<string> {
  const res = await request(`${w.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202, describeResponse(res));
  return res.headers.location!;
}

function assertRefused(res: Streamed, code: string, limit: number, what: string): void {
  const text = `${what}: HTTP ${res.status} sent ${res.sentAtAnswer} ${res.body.toString('utf8').slice(0, 300)}`;
  assert.equal(res.status, 413, text);
  assert.deepEqual(errorCodes({ status: res.status, headers: res.headers, body: res.body }), [code], text);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, text);
  assert.ok(res.sentAtAnswer >= 0, `${text}: wharf closed without answering`);
  // The answer came once the limit was crossed, not at the end (loopback socket buffers excuse some slack).
  assert.ok(res.sentAtAnswer <= limit + 2 * 1024 * 1024, `${text}: answered only after ${res.sentAtAnswer} bytes`);
}

describe('request bodies over the limits are refused while streaming', () => {
  it('manifest PUT declaring more than limits.maxManifestBytes: answered before any body byte', async () => {
    const res = await streamUpload('PUT', '/v2/limits/app/manifests/big', { total: OFFER, declare: OFFER, intervalMs: 20, headers: { 'Content-Type': OCI_MANIFEST } });
    assertRefused(res, 'MANIFEST_INVALID', 0, 'declared manifest');
    assert.ok(res.sentAtAnswer <= 4 * CHUNK, `answered only after ${res.sentAtAnswer} body bytes`);
    assert.equal(res.headers.connection, 'close', 'the unread body is not drained');
  });

  it('chunked manifest PUT of 100 MiB: cut at the limit, memory flat, nothing stored', async () => {
    const filesBefore = await filesUnder(w.dataDir);
    const rssBefore = await rssKiB();
    const res = await streamUpload('PUT', '/v2/limits/app/manifests/big', { total: OFFER, intervalMs: 2, headers: { 'Content-Type': OCI_MANIFEST } });
    assertRefused(res, 'MANIFEST_INVALID', MAX_MANIFEST, 'chunked manifest');
    const grew = (await rssKiB()) - rssBefore;
    assert.ok(grew < 48 * 1024, `wharf RSS grew by ${grew} KiB while refusing a body`);
    assert.deepEqual(await filesUnder(w.dataDir), filesBefore, 'no file left behind');
    const tag = await request(`${w.url}/v2/limits/app/manifests/big`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(tag.status, 404, describeResponse(tag));
  });

  it('monolithic blob POST declaring more than limits.maxBlobBytes: answered before any body byte', async () => {
    const digest = sha256('anything');
    const res = await streamUpload('POST', `/v2/limits/app/blobs/uploads/?digest=${digest}`, { total: OFFER, declare: MAX_BLOB + 1, intervalMs: 20 });
    assertRefused(res, 'SIZE_INVALID', 0, 'declared blob');
    assert.ok(res.sentAtAnswer <= 4 * CHUNK, `answered only after ${res.sentAtAnswer} body bytes`);
  });

  it('chunked monolithic blob POST: cut once past limits.maxBlobBytes, nothing visible', async () => {
    const digest = sha256(Buffer.alloc(OFFER, 0x7b));
    const res = await streamUpload('POST', `/v2/limits/app/blobs/uploads/?digest=${digest}`, { total: OFFER, intervalMs: 1 });
    assertRefused(res, 'SIZE_INVALID', MAX_BLOB, 'chunked blob');
    const head = await request(`${w.url}/v2/limits/app/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
  });

  it('PATCH chunks growing past limits.maxBlobBytes are cut; a declared one is refused up front', async () => {
    const loc = await openSession('limits/app');
    const path = new URL(loc, w.url);
    const first = randomBytes(MAX_BLOB - 1000);
    const p1 = await request(path.toString(), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: first });
    assert.equal(p1.status, 202, describeResponse(p1));
    const next = new URL(p1.headers.location!, w.url);
    const declared = await streamUpload('PATCH', next.pathname + next.search, { total: OFFER, declare: 2000, intervalMs: 20 });
    assertRefused(declared, 'SIZE_INVALID', 0, 'declared chunk');
    assert.ok(declared.sentAtAnswer <= 4 * CHUNK, `answered only after ${declared.sentAtAnswer} body bytes`);
    const loc2 = await openSession('limits/app');
    const next2 = new URL(loc2, w.url);
    const streamed = await streamUpload('PATCH', next2.pathname + next2.search, { total: OFFER, intervalMs: 1 });
    assertRefused(streamed, 'SIZE_INVALID', MAX_BLOB, 'chunked PATCH');
  });

  it('a final PUT chunk past the limit is cut and the upload leaves nothing', async () => {
    const loc = await openSession('limits/app');
    const url = new URL(loc, w.url);
    url.searchParams.set('digest', sha256('whatever'));
    const res = await streamUpload('PUT', url.pathname + url.search, { total: OFFER, intervalMs: 1 });
    assertRefused(res, 'SIZE_INVALID', MAX_BLOB, 'chunked final PUT');
    const tmp = (await filesUnder(join(w.dataDir, 'tmp'))).length;
    const after = await request(url.toString().replace(/\?.*/, ''));
    assert.equal(after.status, 404, `the session is gone: ${describeResponse(after)} (${tmp} temp files)`);
  });

  it('a client that sends a small declared body in full reads the 413, and its connection stays usable', async () => {
    // Node's client (like most) writes the whole body before it reads: wharf must not reset it meanwhile.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const send = (method: string, path: string, body?: Buffer) =>
      new Promise<{ status: number; body: string; reused: boolean }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: w.port, method, path, agent, headers: body ? { 'content-type': OCI_MANIFEST, 'content-length': String(body.length) } : {} }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), reused: req.reusedSocket }));
        });
        req.once('error', reject);
        req.end(body);
      });
    try {
      const big = await send('PUT', '/v2/limits/app/manifests/small-big', Buffer.alloc(4 * MAX_MANIFEST, 0x7b));
      assert.equal(big.status, 413, big.body);
      assert.match(big.body, /MANIFEST_INVALID/);
      const next = await send('GET', '/v2/');
      assert.equal(next.status, 200);
      assert.equal(next.reused, true, 'the same connection served the next request');
    } finally {
      agent.destroy();
    }
  });

  it('a client that asked to close after the exchange and sends its small over-limit body slowly reads the 413, uncut', async () => {
    // Closing right after the answer would cut it off mid-body: its next write fails (EPIPE) and the 413 goes unread.
    const body = Buffer.alloc(4 * MAX_MANIFEST, 0x7b);
    const out = await new Promise<{ writeError?: string; answer: string; sent: number }>((resolve, reject) => {
      const sock = connect(w.port, '127.0.0.1');
      const got: Buffer[] = [];
      let writeError: string | undefined;
      let sent = 0;
      sock.on('data', (b: Buffer) => got.push(b));
      sock.on('error', (e: NodeJS.ErrnoException) => (writeError ??= e.code ?? e.message));
      sock.once('close', () => resolve({ writeError, sent, answer: Buffer.concat(got).toString('latin1') }));
      sock.setTimeout(15_000, () => sock.destroy(new Error('no answer within 15 s')));
      sock.once('connect', async () => {
        try {
          sock.write(`PUT /v2/limits/app/manifests/slow-close HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: ${body.length}\r\n\r\n`);
          for (let off = 0; off < body.length && !sock.destroyed; off += 16 * 1024) {
            const piece = body.subarray(off, off + 16 * 1024);
            sock.write(piece, (err) => (err ? undefined : (sent += piece.length)));
            await new Promise((r) => setTimeout(r, 25));
          }
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    assert.equal(out.writeError, undefined, `the connection was cut while the body was still being sent; got: ${out.answer.slice(0, 300)}`);
    assert.equal(out.sent, body.length, `the connection closed after ${out.sent} of ${body.length} body bytes`);
    assert.match(out.answer, /^HTTP\/1\.1 413 /);
    assert.match(out.answer, /"code":"MANIFEST_INVALID"/);
  });

  it('still serves after all of the above', async () => {
    const res = await request(`${w.url}/v2/`);
    assert.equal(res.status, 200);
  });
});
