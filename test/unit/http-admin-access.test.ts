import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { adminRouter, fromLoopback, type AdminApi } from '../../src/http/admin.js';
import { errors } from '../../src/http/middleware/errors.js';
import { silentLogger } from '../../src/observability/types.js';

/** A fake admin service: the access rule is what is under test, not the operations. */
const fakeAdmin = { stats: async () => ({ fake: true }) } as unknown as AdminApi;

async function serve(credentials?: { username: string; password: string }) {
  const app = new Koa();
  app.use(errors(silentLogger));
  app.use(adminRouter({ admin: fakeAdmin, credentials }).routes());
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
  const peer = (remoteAddress: string) => ({ req: { socket: { remoteAddress } } }) as unknown as Parameters<typeof fromLoopback>[0];
  for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) assert.equal(fromLoopback(peer(a)), true, a);
  for (const a of ['10.0.0.5', '192.168.1.2', '::ffff:10.1.2.3', 'fe80::1', '203.0.113.9']) assert.equal(fromLoopback(peer(a)), false, a);
});

test('with admin credentials the admin API needs them, from anywhere', async (t) => {
  const s = await serve({ username: 'ops', password: 'secret' });
  t.after(s.close);
  assert.equal((await fetch(`http://127.0.0.1:${s.port}/_wharf/admin/stats`)).status, 401);
  const ok = await fetch(`http://127.0.0.1:${s.port}/_wharf/admin/stats`, { headers: { authorization: `Basic ${Buffer.from('ops:secret').toString('base64')}` } });
  assert.equal(ok.status, 200);
});
