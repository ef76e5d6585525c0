import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Koa from 'koa';
import { clientHop, forwarded, forwardedValue, parseIp, proxyMatcher, publicOrigin } from '../../src/http/forwarded.js';

describe('forwarded: who is the client', () => {
  const trusts = proxyMatcher(['10.0.0.0/8', '192.0.2.7', 'fd00::/8']);

  it('matches addresses and ranges, IPv4 and IPv6', () => {
    assert.ok(trusts('10.200.1.1'));
    assert.ok(trusts('192.0.2.7'));
    assert.ok(!trusts('192.0.2.8'));
    assert.ok(trusts('fd12::1'));
    assert.ok(!trusts('fe80::1'));
    assert.ok(!proxyMatcher([])('10.0.0.1'), 'no proxies configured: nobody is trusted');
  });

  it('normalises what proxies and sockets write', () => {
    assert.equal(parseIp('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(parseIp(' 203.0.113.5:51234 '), '203.0.113.5');
    assert.equal(parseIp('[2001:db8::1]:443'), '2001:db8::1');
    assert.equal(parseIp('unknown'), undefined);
    assert.equal(parseIp('203.0.113.5, 1.2.3.4'), undefined);
  });

  it('takes the right-most hop that is not a trusted proxy; a client-written prefix is ignored', () => {
    assert.deepEqual(clientHop('198.51.100.1', ['203.0.113.9'], trusts), { address: '198.51.100.1', proxies: 0 }, 'untrusted peer: header ignored');
    assert.deepEqual(clientHop('10.0.0.1', ['6.6.6.6', '203.0.113.9'], trusts), { address: '203.0.113.9', proxies: 1 });
    assert.deepEqual(clientHop('10.0.0.1', ['203.0.113.9', '10.0.0.2'], trusts), { address: '203.0.113.9', proxies: 2 });
    assert.deepEqual(clientHop('10.0.0.1', [], trusts), { address: '10.0.0.1', proxies: 1 });
    assert.deepEqual(clientHop('10.0.0.1', ['10.9.9.9'], trusts), { address: '10.9.9.9', proxies: 1 }, 'a client inside a trusted range');
    assert.deepEqual(clientHop('10.0.0.1', ['6.6.6.6', 'garbage'], trusts), { address: '10.0.0.1', proxies: 1 }, 'chain stops at an unparsable hop');
  });

  it('picks the proto/host value written by the proxy that met the client', () => {
    assert.equal(forwardedValue(['https'], 1), 'https');
    assert.equal(forwardedValue(['http', 'https'], 1), 'https', 'client sent "http", the proxy appended "https"');
    assert.equal(forwardedValue(['evil', 'https', 'http'], 2), 'https', 'two appending proxies: the outer one');
    assert.equal(forwardedValue(['https'], 3), 'https', 'one value from an overwriting proxy');
    assert.equal(forwardedValue([], 1), undefined);
  });
});

describe('forwarded middleware on a real socket', () => {
  let server: ReturnType<Koa['listen']>;
  let port: number;
  before(async () => {
    const app = new Koa();
    app.use(forwarded(['127.0.0.2']));
    app.use((ctx) => {
      ctx.body = { ip: ctx.ip, origin: publicOrigin(ctx), href: ctx.href, secure: ctx.secure };
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise((r) => server.close(r)));

  function get(from: string, headers: Record<string, string>): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v2/x', localAddress: from, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>));
      });
      req.once('error', reject);
      req.end();
    });
  }

  const spoof = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'mirror.example.com' };

  it('ignores X-Forwarded-* from a peer that is not a trusted proxy', async () => {
    const seen = await get('127.0.0.1', spoof);
    assert.deepEqual(seen, { ip: '127.0.0.1', origin: `http://127.0.0.1:${port}`, href: `http://127.0.0.1:${port}/v2/x`, secure: false });
  });

  it('believes them from a trusted proxy: client address, scheme and host of absolute URLs', async () => {
    const seen = await get('127.0.0.2', spoof);
    assert.deepEqual(seen, { ip: '203.0.113.9', origin: 'https://mirror.example.com', href: 'https://mirror.example.com/v2/x', secure: true });
  });

  it('a malformed forwarded host or scheme falls back to what the connection says', async () => {
    const seen = await get('127.0.0.2', { 'x-forwarded-proto': 'javascript', 'x-forwarded-host': 'evil.example/path' });
    assert.equal(seen.origin, `http://127.0.0.1:${port}`);
    assert.equal(seen.ip, '127.0.0.2');
  });
});
