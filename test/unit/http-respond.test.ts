/**
 * A blob body whose source ends before the length the response announced: the client must see the
 * short body at once (the connection cut), not wait on a kept-alive connection for bytes that never come.
 * A real Koa server on loopback and a real HTTP client; the blob source is a fake that stops early.
 */
import assert from 'node:assert/strict';
import { Agent as HttpAgent, createServer, request, type Agent } from 'node:http';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import Koa from 'koa';
import { contentHeaders, streamBody } from '../../src/http/respond.js';
import { digestOf } from '../../src/oci/index.js';
import { listenLoopback } from '../helpers/ports.js';

/** A file-like source (it can fill the caller's buffers) holding `have` of the bytes. */
function fakeShortSource(have: number): Readable {
  let left = have;
  const src = new Readable({ read() {} }) as Readable & { readInto(buf: Buffer): Promise<number> };
  src.readInto = async (buf: Buffer) => {
    const n = Math.min(left, buf.length);
    buf.fill(7, 0, n);
    left -= n;
    return n;
  };
  return src;
}

function get(port: number, agent: Agent): Promise<{ status: number; got: number; error?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => (got += c.length));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, got }));
      res.once('aborted', () => resolve({ status: res.statusCode ?? 0, got, error: 'aborted' }));
      res.once('error', (e) => resolve({ status: res.statusCode ?? 0, got, error: e.message }));
    });
    req.once('error', reject);
    req.end();
  });
}

test('a blob body that ends before its Content-Length cuts the connection: the client sees it at once', async (t) => {
  const size = 3 * 1024 * 1024;
  const app = new Koa();
  app.use((ctx) => {
    contentHeaders(ctx, { digest: digestOf('any'), size, mediaType: 'application/octet-stream' });
    streamBody(ctx, fakeShortSource(size - 1000));
  });
  const server = createServer(app.callback());
  // The server would keep an idle connection for a minute: a client left waiting would wait that long.
  server.keepAliveTimeout = 60_000;
  const port = await listenLoopback(server);
  const agent = new HttpAgent({ keepAlive: true });
  t.after(() => {
    agent.destroy();
    server.closeAllConnections();
    server.close();
  });
  const started = performance.now();
  const res = await get(port, agent);
  const took = performance.now() - started;
  assert.equal(res.status, 200);
  assert.equal(res.got, size - 1000);
  assert.ok(res.error, 'the client was told the body is incomplete');
  assert.ok(took < 10_000, `the client waited ${Math.round(took)} ms for bytes that never came`);
});
