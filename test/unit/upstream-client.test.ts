import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { UpstreamConfig } from '../../src/config/types.js';
import { upstreamConfig } from '../helpers/upstream-config.js';
import { digestOf, ErrorCode, isRegistryError } from '../../src/oci/index.js';
import { createUpstream } from '../../src/upstream/index.js';

function config(url: string, over: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return upstreamConfig(url, { name: 'fake-up', maxConnections: 2, maxConcurrentFetches: 2, timeouts: { connect: 2_000, headers: 5_000, body: 5_000 }, ...over });
}

/** A fake registry: routes by path, records each request. */
async function fakeRegistry(t: TestContext, handle: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    seen.push(req);
    handle(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const blob = Buffer.from('0123456789abcdef'.repeat(64));
const blobDigest = digestOf(blob);
const code = (e: unknown): string | undefined => (isRegistryError(e) ? e.code : undefined);

test('a 200 answer to a Range request reports offset 0 so the caller can skip', async (t) => {
  const fake = await fakeRegistry(t, (req, res) => {
    if (req.url === '/v2/') return res.writeHead(200).end('{}');
    res.writeHead(200, { 'content-length': String(blob.length) }).end(blob); // ignores Range
  });
  const up = createUpstream(config(fake.url));
  t.after(() => up.close());
  const b = await up.blob('a/b', blobDigest, undefined, 100);
  assert.equal(b.offset, 0);
  assert.equal(b.size, blob.length);
  const chunks: Buffer[] = [];
  for await (const c of b.body) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), blob);
  assert.equal(fake.seen.at(-1)?.headers.range, 'bytes=100-');
  assert.equal(fake.seen.at(-1)?.headers.authorization, undefined, 'open registry: no Authorization');
});

test('a manifest over the size cap is refused', async (t) => {
  const fake = await fakeRegistry(t, (req, res) => {
    if (req.url === '/v2/') return res.writeHead(200).end('{}');
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(Buffer.alloc(2048, 0x20));
  });
  const up = createUpstream(config(fake.url), { maxManifestBytes: 1024 });
  t.after(() => up.close());
  await assert.rejects(up.manifest('a/b', 'latest'), (e) => code(e) === ErrorCode.MANIFEST_INVALID && /fake-up/.test((e as Error).message));
});

test('tagPages follows Link pagination on the upstream origin only', async (t) => {
  const fake = await fakeRegistry(t, (req, res) => {
    if (req.url === '/v2/') return res.writeHead(200).end('{}');
    const u = new URL(req.url ?? '/', 'http://x');
    const last = u.searchParams.get('last');
    if (last === null) {
      res.writeHead(200, { link: '</v2/a/b/tags/list?n=2&last=t2>; rel="next"' }).end(JSON.stringify({ name: 'a/b', tags: ['t1', 't2'] }));
    } else if (last === 't2') {
      res.writeHead(200, { link: '<http://elsewhere.test/v2/a/b/tags/list?last=t3>; rel="next"' }).end(JSON.stringify({ name: 'a/b', tags: ['t3'] }));
    } else {
      res.writeHead(500).end();
    }
  });
  const up = createUpstream(config(fake.url));
  t.after(() => up.close());
  const pages = [];
  for await (const p of up.tagPages('a/b')) pages.push(p);
  assert.deepEqual(pages, [{ tags: ['t1', 't2'], more: true }, { tags: ['t3'], more: false }]);
});

test('a Bearer challenge without a realm uses a configured token as the bearer', async (t) => {
  const fake = await fakeRegistry(t, (req, res) => {
    if (req.headers.authorization !== 'Bearer pat-123') {
      return res.writeHead(401, { 'www-authenticate': 'Bearer service="x"' }).end();
    }
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'docker-content-digest': blobDigest }).end();
  });
  const up = createUpstream(config(fake.url, { credentials: { token: 'pat-123' } }));
  t.after(() => up.close());
  assert.equal((await up.headManifest('a/b', 'latest')).digest, blobDigest);
});

test('more than five redirects is UNAVAILABLE', async (t) => {
  const fake = await fakeRegistry(t, (req, res) => {
    if (req.url === '/v2/') return res.writeHead(200).end('{}');
    res.writeHead(302, { location: `${req.url}?again=${Math.random()}` }).end();
  });
  const up = createUpstream(config(fake.url));
  t.after(() => up.close());
  await assert.rejects(up.blob('a/b', blobDigest), (e) => code(e) === ErrorCode.UNAVAILABLE && /redirects/.test((e as Error).message));
  assert.equal(fake.seen.filter((r) => r.url?.includes('/blobs/')).length, 6);
});

test('a token endpoint that refuses is UNAUTHORIZED, and the secret is not in the message', async (t) => {
  const fake = await fakeRegistry(t, (req, res) => {
    if (req.url?.startsWith('/token')) return res.writeHead(401).end();
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="svc"` }).end();
  });
  const up = createUpstream(config(fake.url, { credentials: { username: 'u', password: 'hunter2' } }));
  t.after(() => up.close());
  await assert.rejects(up.manifest('a/b', 'latest'), (e) => code(e) === ErrorCode.UNAUTHORIZED && !(e as Error).message.includes('hunter2'));
  const tokenReq = fake.seen.find((r) => r.url?.startsWith('/token'));
  assert.equal(new URL(tokenReq?.url ?? '/', 'http://x').searchParams.get('scope'), 'repository:a/b:pull');
  assert.equal(new URL(tokenReq?.url ?? '/', 'http://x').searchParams.get('service'), 'svc');
});
