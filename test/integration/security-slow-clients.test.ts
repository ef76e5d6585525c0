import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

// Short timeouts so the test takes seconds: headers must be complete within 1 s, a connection silent both
// ways for 2 s is closed (keep-alive must stay below headersTimeout).
const HEADERS_MS = 1000;
const IDLE_MS = 2000;

let w: WharfProcess;
before(async () => {
  w = await startWharf({
    config: { upstreams: [], server: { keepAliveTimeout: '500ms', headersTimeout: `${HEADERS_MS}ms`, idleTimeout: `${IDLE_MS}ms` } },
  });
});
after(() => w?.stop());

interface Closed {
  /** ms from connect until wharf closed the connection */
  afterMs: number;
  /** what wharf sent before closing */
  received: string;
}

/**
 * Opens a connection, writes `head`, then `drip` one byte every `everyMs` (if given), and resolves when
 * wharf closes the connection; rejects if it is still open after `capMs`.
 */
function slowClient(head: string | Buffer, opts: { drip?: string; everyMs?: number; capMs: number }): Promise<Closed> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const sock: Socket = connect(w.port, '127.0.0.1');
    let received = '';
    let timer: NodeJS.Timeout | undefined;
    let i = 0;
    const cap = setTimeout(() => {
      clearInterval(timer);
      sock.destroy();
      reject(new Error(`connection still open after ${opts.capMs} ms (received ${JSON.stringify(received.slice(0, 100))})`));
    }, opts.capMs);
    sock.on('data', (c: Buffer) => (received += c.toString('latin1')));
    sock.on('error', () => undefined); // a reset is one way of being closed
    sock.once('connect', () => {
      sock.write(head);
      if (opts.drip !== undefined) {
        const drip = opts.drip;
        timer = setInterval(() => {
          if (!sock.destroyed && sock.writable) sock.write(drip[i++ % drip.length] as string);
        }, opts.everyMs);
      }
    });
    sock.once('close', () => {
      clearInterval(timer);
      clearTimeout(cap);
      resolve({ afterMs: Date.now() - started, received });
    });
  });
}

describe('slow clients are cut off without holding up others', () => {
  it('headers dripped byte by byte are cut at ~headersTimeout, a connection that sends nothing at ~headersTimeout, a stalled upload body at ~idleTimeout; meanwhile others are served promptly', async (t) => {
    const start = await request(`${w.url}/v2/slow/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    const location = start.headers.location as string;
    assert.ok(location.startsWith('/'), `relative upload Location: ${location}`);

    // Each dripper sends a byte every 100 ms, so the connection is never idle: only headersTimeout can end it.
    const drippers = Array.from({ length: 20 }, () =>
      slowClient(`GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:${w.port}\r\nX-Slow: `, { drip: 'abcdefgh', everyMs: 100, capMs: 8000 }),
    );
    // The upload announces 1 MiB, sends 1 KiB and stalls.
    const staller = slowClient(
      Buffer.concat([
        Buffer.from(`PATCH ${location} HTTP/1.1\r\nHost: 127.0.0.1:${w.port}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n`),
        Buffer.alloc(1024, 1),
      ]),
      { capMs: 8000 },
    );
    const silent = slowClient('', { capMs: 8000 });

    // While they hang on, ordinary requests get answered at once.
    for (let n = 0; n < 10; n++) {
      const t0 = Date.now();
      const res = await request(`${w.url}/v2/`, { timeoutMs: 5000 });
      assert.equal(res.status, 200);
      assert.ok(Date.now() - t0 < 500, `request ${n} took ${Date.now() - t0} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }

    for (const closed of await Promise.all(drippers)) {
      assert.ok(closed.afterMs >= HEADERS_MS - 100 && closed.afterMs < IDLE_MS, `dripper closed after ${closed.afterMs} ms`);
      assert.match(closed.received, /^HTTP\/1\.1 408 /, 'told why');
    }
    const stalled = await staller;
    assert.ok(stalled.afterMs >= IDLE_MS - 100 && stalled.afterMs < IDLE_MS + 1500, `stalled upload closed after ${stalled.afterMs} ms`);
    const idle = await silent;
    const dripped = (await Promise.all(drippers)).map((c) => c.afterMs);
    t.diagnostic(`closed after: drippers ${Math.min(...dripped)}-${Math.max(...dripped)} ms, stalled upload ${stalled.afterMs} ms, silent ${idle.afterMs} ms`);
    assert.ok(idle.afterMs >= HEADERS_MS - 100 && idle.afterMs < IDLE_MS, `silent connection closed after ${idle.afterMs} ms`);

    // The stalled upload session is still usable: a client that comes back can see where it stands.
    const status = await request(`${w.url}${location}`, { timeoutMs: 5000 });
    assert.ok(status.status === 204 || status.status === 404, `upload status after the cut: ${status.status}`);
    assert.doesNotMatch(w.logs(), /uncaught|unhandled/i);
  });
});
