import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { adminEndpoint, fromLoopback, type AdminApi } from '../../src/http/admin.js';
import { errors } from '../../src/http/middleware/errors.js';
import { forwarded } from '../../src/http/forwarded.js';
import { silentLogger } from '../../src/observability/types.js';

/** A fake admin service: the access rule is what is under test, not the operations. */
const fakeAdmin = { stats: async () => ({ fake: true }) } as unknown as AdminApi;

async function serve(credentials?: { username: string; password: string }, trustedProxies: string[] = []) {
  const app = new Koa();
  app.use(forwarded(trustedProxies));
  app.use(errors(silentLogger));
  app.use(adminEndpoint({ admin: fakeAdmin, credentials }));
  const server = createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test('without admin credentials the admin API answers loopback callers', async (t) => {
  const s = await serve();
  t.after(s.close);
  assert.equal((await fetch(`http://127.0.0.1:${s.port}/_wharf/admin/stats`)).status, 200);
});

// Tests send traffic to loopback only, so the remote case is checked on the address rule itself.
test('only loopback peers count as local callers', () => {
  const peer = (remoteAddress: string) => ({ req: { socket: { remoteAddress } }, ip: remoteAddress, get: () => '', state: {} }) as unknown as Parameters<typeof fromLoopback>[0];
  for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) assert.equal(fromLoopback(peer(a)), true, a);
  for (const a of ['10.0.0.5', '192.168.1.2', '::ffff:10.1.2.3', 'fe80::1', '203.0.113.9']) assert.equal(fromLoopback(peer(a)), false, a);
});

test('a reverse proxy on the same host does not make its clients local callers', async (t) => {
  const s = await serve();
  t.after(s.close);
  const url = `http://127.0.0.1:${s.port}/_wharf/admin/stats`;
  for (const h of ['x-forwarded-for', 'x-real-ip']) {
    const res = await fetch(url, { headers: { [h]: '203.0.113.9' } });
    assert.equal(res.status, 403, `${h}: a proxied request is refused`);
  }
  const fwd = await fetch(url, { headers: { forwarded: 'for=203.0.113.9' } });
  assert.equal(fwd.status, 403, 'Forwarded: a proxied request is refused');
});

test('behind a trusted proxy the client it names decides', async (t) => {
  const s = await serve(undefined, ['127.0.0.1']);
  t.after(s.close);
  const url = `http://127.0.0.1:${s.port}/_wharf/admin/stats`;
  assert.equal((await fetch(url, { headers: { 'x-forwarded-for': '203.0.113.9' } })).status, 403, 'a remote client behind the proxy');
  assert.equal((await fetch(url, { headers: { 'x-forwarded-for': '127.0.0.1' } })).status, 200, 'a local client behind the proxy');
});

test('with admin credentials the admin API needs them, from anywhere', async (t) => {
  const s = await serve({ username: 'ops', password: 'secret' });
  t.after(s.close);
  assert.equal((await fetch(`http://127.0.0.1:${s.port}/_wharf/admin/stats`)).status, 401);
  const ok = await fetch(`http://127.0.0.1:${s.port}/_wharf/admin/stats`, { headers: { authorization: `Basic ${Buffer.from('ops:secret').toString('base64')}` } });
  assert.equal(ok.status, 200);
});
