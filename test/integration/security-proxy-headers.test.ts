import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

// 127.0.0.2 plays the reverse proxy: still loopback, but a different peer address than the tests' 127.0.0.1.
let w: WharfProcess;
before(async () => {
  w = await startWharf({ config: { upstreams: [], server: { trustedProxies: ['127.0.0.2', '10.0.0.0/8'] } } });
});
after(() => w?.stop());

/** GET /v2/ from `localAddress` with `headers`; returns the access log entry of that request. */
async function logged(localAddress: string, headers: Record<string, string>): Promise<Record<string, unknown>> {
  const id = randomUUID();
  const status = await new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: w.port, path: '/v2/', localAddress, headers: { ...headers, 'x-request-id': id }, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
  assert.equal(status, 200);
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = w.logs().split('\n').find((l) => l.includes(id) && l.includes('"request"'));
    if (line) return JSON.parse(line) as Record<string, unknown>;
    if (Date.now() > deadline) assert.fail(`no access log line for ${id}:\n${w.logs().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('X-Forwarded-For in the access log', () => {
  it('records the connecting address when the peer is not a trusted proxy, whatever it claims', async () => {
    const entry = await logged('127.0.0.1', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' });
    assert.equal(entry.client, '127.0.0.1');
  });

  it('records the client behind a trusted proxy: the right-most untrusted hop, not a spoofed left-most one', async () => {
    assert.equal((await logged('127.0.0.2', { 'x-forwarded-for': '203.0.113.9' })).client, '203.0.113.9');
    assert.equal((await logged('127.0.0.2', { 'x-forwarded-for': '198.51.100.66, 203.0.113.9' })).client, '203.0.113.9');
    assert.equal((await logged('127.0.0.2', { 'x-forwarded-for': '198.51.100.66, 203.0.113.9, 10.1.2.3' })).client, '203.0.113.9', 'through two trusted proxies');
    assert.equal((await logged('127.0.0.2', {})).client, '127.0.0.2', 'a trusted peer without the header is the client');
  });
});
