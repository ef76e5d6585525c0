import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { parseChallenge } from '../helpers/http.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

// 127.0.0.2 plays the reverse proxy: still loopback, but a different peer address than the tests' 127.0.0.1.
// With auth on, GET /v2/ answers 401 with a Bearer challenge whose realm is an absolute URL wharf builds.
let w: WharfProcess;
before(async () => {
  w = await startWharf({
    config: {
      upstreams: [],
      server: { trustedProxies: ['127.0.0.2', '10.0.0.0/8'] },
      auth: { tokens: [{ user: 'ci', token: 'proxy-test-token-0123456789abcdef' }] },
    },
  });
});
after(() => w?.stop());

interface Seen {
  /** the Bearer challenge's realm */
  realm: string | undefined;
  /** the access log entry of the request */
  entry: Record<string, unknown>;
}

/** Anonymous GET /v2/ from `localAddress` with `headers`: what the client and the access log see. */
async function exchange(localAddress: string, headers: Record<string, string>): Promise<Seen> {
  const id = randomUUID();
  const challenge = await new Promise<string | undefined>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: w.port, path: '/v2/', localAddress, headers: { ...headers, 'x-request-id': id }, agent: false }, (res) => {
      res.resume();
      res.once('end', () => (res.statusCode === 401 ? resolve(res.headers['www-authenticate']) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.once('error', reject);
    req.end();
  });
  const realm = parseChallenge(challenge)?.params.realm;
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = w.logs().split('\n').find((l) => l.includes(id) && l.includes('"request"'));
    if (line) return { realm, entry: JSON.parse(line) as Record<string, unknown> };
    if (Date.now() > deadline) assert.fail(`no access log line for ${id}:\n${w.logs().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const claims = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'mirror.example.com' };

describe('X-Forwarded-* from a peer that is not a trusted proxy', () => {
  it('are ignored: the access log has the connecting address, the realm the Host wharf was reached at', async () => {
    const seen = await exchange('127.0.0.1', { 'x-forwarded-for': '203.0.113.9', ...claims });
    assert.equal(seen.entry.client, '127.0.0.1');
    assert.equal(seen.realm, `http://127.0.0.1:${w.port}/token`);
  });
});

describe('X-Forwarded-* from a trusted proxy', () => {
  it('set the scheme and host of the token realm', async () => {
    const seen = await exchange('127.0.0.2', { 'x-forwarded-for': '203.0.113.9', ...claims });
    assert.equal(seen.realm, 'https://mirror.example.com/token');
  });

  it('give the client address: the right-most untrusted hop, not a spoofed left-most one', async () => {
    const client = async (xff?: string) => (await exchange('127.0.0.2', xff === undefined ? {} : { 'x-forwarded-for': xff })).entry.client;
    assert.equal(await client('203.0.113.9'), '203.0.113.9');
    assert.equal(await client('198.51.100.66, 203.0.113.9'), '203.0.113.9');
    assert.equal(await client('198.51.100.66, 203.0.113.9, 10.1.2.3'), '203.0.113.9', 'through two trusted proxies');
    assert.equal(await client(), '127.0.0.2', 'a trusted peer without the header is the client');
  });

  it('a client behind the proxy cannot pick the realm host by sending its own X-Forwarded-Host first', async () => {
    // The proxy appends: the client's claim comes first, the proxy's own value last.
    const seen = await exchange('127.0.0.2', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'http, https', 'x-forwarded-host': 'evil.example, mirror.example.com' });
    assert.equal(seen.realm, 'https://mirror.example.com/token');
  });
});

describe('the Host header', () => {
  /** Anonymous GET /v2/ with this Host: the whole WWW-Authenticate header. */
  const challengeFor = (host: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: w.port, path: '/v2/', headers: { host }, agent: false }, (res) => {
        res.resume();
        res.once('end', () => resolve(String(res.headers['www-authenticate'])));
      });
      req.once('error', reject);
      req.end();
    });

  it('is never reflected into the Bearer challenge unless it is a plain host[:port]', async () => {
    for (const host of ['evil.example",error="x', 'evil.example/path', 'evil.example:1/x', 'a b', '"']) {
      const header = await challengeFor(host);
      const ch = parseChallenge(header);
      assert.deepEqual(Object.keys(ch?.params ?? {}).sort(), ['realm', 'service'], `Host ${host}: ${header}`);
      assert.equal(ch?.params.realm, `http://127.0.0.1:${w.port}/token`, `Host ${host}: the realm is the address the request came in on`);
    }
    assert.equal(parseChallenge(await challengeFor('mirror.example.com:5000'))?.params.realm, 'http://mirror.example.com:5000/token', 'a valid Host is the realm host');
  });
});
