import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { UpstreamConfig } from '../../src/config/types.js';
import { upstreamConfig } from '../helpers/upstream-config.js';
import { ErrorCode, isRegistryError, parseDigest, type Digest } from '../../src/oci/index.js';
import { createUpstream, isDigestMismatch, type RateLimitReading, type UpstreamClient, type UpstreamDeps } from '../../src/upstream/index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startBasicRegistry, startTokenRegistry, type RegistryProcess, type TokenRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';

const alice = { username: 'alice', password: 'wonderland' };

const config = upstreamConfig;

/** A clock the test moves by hand. */
function clock(start = Date.now()): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function open(cfg: UpstreamConfig, deps: UpstreamDeps = {}): UpstreamClient {
  return createUpstream(cfg, deps);
}

async function readAll(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function code(e: unknown): string | undefined {
  return isRegistryError(e) ? e.code : undefined;
}

/** A stand-in for a blob CDN: serves fixed bytes and records each request's headers and each connection. */
async function startFakeCdn(bytes: Buffer): Promise<{ server: Server; port: number; headers: IncomingHttpHeaders[]; connections: () => number; stop: () => Promise<void> }> {
  const headers: IncomingHttpHeaders[] = [];
  let connections = 0;
  const server = createServer((req, res) => {
    headers.push(req.headers);
    res.writeHead(200, { 'content-length': String(bytes.length), 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  });
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    headers,
    connections: () => connections,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('upstream client against a token registry (docker.io-like)', () => {
  let hub: TokenRegistry;
  let proxy: FaultProxy;
  let img: TestImage;
  const repo = 'library/demo';

  before(async () => {
    hub = await startTokenRegistry({ users: { alice: alice.password } });
    img = makeImage({ layers: 2, layerSize: 64 * 1024 });
    await pushImage(hub.registry.url, repo, 'v1', img, alice);
    await pushImage(hub.registry.url, repo, 'v2', img, alice);
    proxy = await startFaultProxy(hub.registry.url);
  });
  after(async () => {
    await proxy.stop();
    await hub.stop();
  });

  it('fetches manifests and blobs with one cached token for many requests', async () => {
    const up = open(config(hub.registry.url));
    try {
      const issued = hub.tokens.issued;
      for (let i = 0; i < 5; i++) {
        const m = await up.manifest(repo, 'v1');
        assert.deepEqual(m.bytes, img.manifest);
        assert.equal(m.digest, img.manifestDigest);
        assert.equal(m.mediaType, img.mediaType);
      }
      const byDigest = await up.manifest(repo, img.manifestDigest);
      assert.deepEqual(byDigest.bytes, img.manifest);
      const head = await up.headManifest(repo, 'v1');
      assert.equal(head.digest, img.manifestDigest);
      assert.equal(head.mediaType, img.mediaType);
      assert.equal(head.size, img.manifest.length);
      const layer = img.layers[0]!;
      const b = await up.blob(repo, parseDigest(layer.digest));
      assert.equal(b.offset, 0);
      assert.equal(b.size, layer.bytes.length);
      assert.equal(sha256(await readAll(b.body)), layer.digest);
      assert.deepEqual(await up.headBlob(repo, parseDigest(layer.digest)), { size: layer.bytes.length });
      assert.equal(hub.tokens.issued - issued, 1, 'one token for every request on one scope');
      const last = hub.tokens.requests.at(-1);
      assert.equal(last?.scope, `repository:${repo}:pull`);
      assert.equal(last?.user, undefined, 'anonymous without credentials');
    } finally {
      await up.close();
    }
  });

  it('concurrent first requests share one ping and one token fetch', async () => {
    const up = open(config(hub.registry.url));
    try {
      const issued = hub.tokens.issued;
      const all = await Promise.all(Array.from({ length: 8 }, () => up.headManifest(repo, 'v1')));
      assert.ok(all.every((h) => h.digest === img.manifestDigest));
      assert.equal(hub.tokens.issued - issued, 1);
    } finally {
      await up.close();
    }
  });

  it('maps a missing manifest, blob and repository to the spec codes', async () => {
    const up = open(config(hub.registry.url));
    try {
      await assert.rejects(up.manifest(repo, 'nope'), (e) => code(e) === ErrorCode.MANIFEST_UNKNOWN && /test-upstream/.test((e as Error).message));
      await assert.rejects(up.headManifest(repo, 'nope'), (e) => code(e) === ErrorCode.MANIFEST_UNKNOWN);
      const missing = parseDigest(sha256('missing'));
      await assert.rejects(up.blob(repo, missing), (e) => code(e) === ErrorCode.BLOB_UNKNOWN);
      const tags = async (r: string): Promise<string[]> => {
        const out: string[] = [];
        for await (const p of up.tagPages(r)) out.push(...p.tags);
        return out;
      };
      await assert.rejects(tags('library/absent'), (e) => code(e) === ErrorCode.NAME_UNKNOWN);
      assert.deepEqual((await tags(repo)).sort(), ['v1', 'v2']);
    } finally {
      await up.close();
    }
  });

  it('resumes a blob with Range and counts streamed bytes', async () => {
    let bytes = 0;
    const up = open(config(hub.registry.url), { observer: { ...quietObserver(), bytes: (_u, n) => (bytes += n) } });
    try {
      const layer = img.layers[1]!;
      const b = await up.blob(repo, parseDigest(layer.digest), undefined, 1000);
      assert.equal(b.offset, 1000);
      assert.equal(b.size, layer.bytes.length);
      assert.deepEqual(await readAll(b.body), layer.bytes.subarray(1000));
      assert.equal(bytes, layer.bytes.length - 1000);
    } finally {
      await up.close();
    }
  });

  it('refreshes an expired token (injected clock)', async () => {
    const c = clock();
    const up = open(config(hub.registry.url), { now: c.now });
    try {
      const issued = hub.tokens.issued;
      await up.headManifest(repo, 'v1');
      c.advance(200_000); // 300 s token, 30 s margin: still valid
      await up.headManifest(repo, 'v1');
      assert.equal(hub.tokens.issued - issued, 1);
      c.advance(71_000); // 271 s > 270 s
      await up.headManifest(repo, 'v1');
      assert.equal(hub.tokens.issued - issued, 2);
    } finally {
      await up.close();
    }
  });

  it('on a 401 invalidates the token and retries exactly once', async () => {
    const up = open(config(proxy.url));
    try {
      await up.headManifest(repo, 'v1'); // warm: ping + token
      const challenge = `Bearer realm="${hub.tokens.url}",service="${hub.tokens.service}",error="invalid_token"`;
      const path = new RegExp(`^/v2/${repo}/manifests/v1$`);
      proxy.reset();
      let issued = hub.tokens.issued;
      proxy.inject({ match: { method: 'GET', path }, times: 1, action: { kind: 'status', status: 401, headers: { 'www-authenticate': challenge } } });
      const m = await up.manifest(repo, 'v1');
      assert.deepEqual(m.bytes, img.manifest);
      assert.equal(proxy.count({ method: 'GET', path }), 2, 'the rejected request and one retry');
      assert.equal(proxy.count({ path: '/v2/' }), 0, 'same challenge: no re-ping');
      assert.equal(hub.tokens.issued - issued, 1, 'a fresh token for the retry');

      proxy.reset();
      issued = hub.tokens.issued;
      proxy.inject({ match: { method: 'GET', path }, times: 3, action: { kind: 'status', status: 401, headers: { 'www-authenticate': challenge } } });
      await assert.rejects(up.manifest(repo, 'v1'), (e) => code(e) === ErrorCode.UNAUTHORIZED);
      assert.equal(proxy.count({ method: 'GET', path }), 2, 'never more than one retry');
      proxy.clearFaults();
    } finally {
      proxy.clearFaults();
      await up.close();
    }
  });

  it('re-pings /v2/ after a 401 carrying a different challenge', async () => {
    const up = open(config(proxy.url));
    try {
      await up.headManifest(repo, 'v1');
      proxy.reset();
      const path = new RegExp(`^/v2/${repo}/manifests/v1$`);
      proxy.inject({ match: { method: 'HEAD', path }, times: 1, action: { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="elsewhere"' } } });
      const h = await up.headManifest(repo, 'v1');
      assert.equal(h.digest, img.manifestDigest);
      assert.equal(proxy.count({ path: '/v2/' }), 1);
    } finally {
      proxy.clearFaults();
      await up.close();
    }
  });

  it('uses configured credentials (a token is the Basic password at the token endpoint)', async () => {
    const up = open(config(hub.registry.url, { credentials: { username: 'alice', token: alice.password } }));
    const wrong = open(config(hub.registry.url, { credentials: { username: 'alice', password: 'wrong' } }));
    try {
      await up.headManifest(repo, 'v1');
      assert.equal(hub.tokens.requests.at(-1)?.user, 'alice');
      await assert.rejects(wrong.manifest(repo, 'v1'), (e) => code(e) === ErrorCode.UNAUTHORIZED && !String((e as Error).message).includes('wrong'));
    } finally {
      await up.close();
      await wrong.close();
    }
  });

  it('refuses a manifest whose bytes do not hash to the requested digest', async () => {
    const up = open(config(proxy.url));
    try {
      proxy.inject({ match: { method: 'GET', path: new RegExp(`manifests/${img.manifestDigest}$`) }, times: 1, action: { kind: 'corrupt' } });
      await assert.rejects(up.manifest(repo, img.manifestDigest), (e) => isDigestMismatch(e) && code(e) === ErrorCode.DIGEST_INVALID);
    } finally {
      proxy.clearFaults();
      await up.close();
    }
  });

  it('maps 429 to TOOMANYREQUESTS and then refuses manifest GETs locally until Retry-After', async () => {
    const c = clock();
    let throttled = 0;
    const up = open(config(proxy.url), { now: c.now, observer: { ...quietObserver(), throttled: () => throttled++ } });
    try {
      await up.headManifest(repo, 'v1');
      const path = new RegExp(`^/v2/${repo}/manifests/`);
      proxy.inject({ match: { method: 'GET', path }, times: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': '30' } } });
      await assert.rejects(up.manifest(repo, 'v1'), (e) => code(e) === ErrorCode.TOOMANYREQUESTS && (e as { headers: Record<string, string> }).headers['Retry-After'] === '30');
      assert.ok(throttled >= 1);
      assert.equal(up.throttledUntil(), c.now() + 30_000);
      proxy.reset();
      await assert.rejects(up.manifest(repo, 'v1'), (e) => code(e) === ErrorCode.TOOMANYREQUESTS && Number((e as { headers: Record<string, string> }).headers['Retry-After']) === 30);
      assert.equal(proxy.count(), 0, 'refused without touching the network');
      // HEADs are free on Docker Hub: they still go
      assert.equal((await up.headManifest(repo, 'v1')).digest, img.manifestDigest);
      assert.equal(proxy.count({ method: 'HEAD' }), 1);
      c.advance(31_000);
      assert.equal(up.throttledUntil(), undefined);
      assert.deepEqual((await up.manifest(repo, 'v1')).bytes, img.manifest);
    } finally {
      proxy.clearFaults();
      await up.close();
    }
  });

  it('reads ratelimit headers; an exhausted quota is reported, and held by core (probed), not for the whole window here', async () => {
    const c = clock();
    const readings: RateLimitReading[] = [];
    const up = open(config(proxy.url), { now: c.now, observer: { ...quietObserver(), rateLimit: (_u, r) => readings.push(r) } });
    try {
      proxy.inject({
        match: { method: 'HEAD' },
        times: 1,
        action: { kind: 'headers', headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600', 'docker-ratelimit-source': '203.0.113.9' } },
      });
      await up.headManifest(repo, 'v1');
      const want = { limit: 100, remaining: 0, windowSeconds: 21600, source: '203.0.113.9', observedAt: c.now() };
      assert.deepEqual(up.rateLimit(), want);
      assert.deepEqual(readings.at(-1), want);
      // Docker Hub's window slides: holding for all of w=21600 would be six hours of refusals; core/quota.ts
      // holds and probes instead (test/integration/mirror-quota.test.ts), so the client itself holds nothing.
      assert.equal(up.throttledUntil(), undefined);
      assert.deepEqual((await up.manifest(repo, 'v1')).bytes, img.manifest);
    } finally {
      proxy.clearFaults();
      await up.close();
    }
  });

  it('follows a blob redirect to an allowed host without forwarding Authorization', async () => {
    const layer = img.layers[0]!;
    const cdn = await startFakeCdn(layer.bytes);
    const up = open(config(proxy.url, { redirectHosts: [`127.0.0.1:${cdn.port}`] }));
    try {
      proxy.inject({
        match: { method: 'GET', path: new RegExp(`blobs/${layer.digest}$`) },
        times: 1,
        action: { kind: 'status', status: 307, headers: { location: `http://127.0.0.1:${cdn.port}/signed/blob?sig=abc` } },
      });
      // the upstream still wants a token for the first hop: warm it so the Authorization exists
      await up.headManifest(repo, 'v1');
      const b = await up.blob(repo, parseDigest(layer.digest));
      assert.equal(sha256(await readAll(b.body)), layer.digest);
      assert.equal(cdn.headers.length, 1);
      assert.equal(cdn.headers[0]?.authorization, undefined);
    } finally {
      proxy.clearFaults();
      await up.close();
      await cdn.stop();
    }
  });

  it('follows a redirect to a listed name resolved through the injected lookup', async () => {
    const layer = img.layers[0]!;
    const cdn = await startFakeCdn(layer.bytes);
    const up = open(config(proxy.url, { redirectHosts: ['*.cdn.test'] }), {
      lookup: async (host) => (host === 'eu.cdn.test' ? ['127.0.0.1'] : []),
    });
    try {
      proxy.inject({
        match: { method: 'GET', path: new RegExp(`blobs/${layer.digest}$`) },
        times: 1,
        action: { kind: 'status', status: 302, headers: { location: `http://eu.cdn.test:${cdn.port}/b` } },
      });
      const b = await up.blob(repo, parseDigest(layer.digest));
      assert.deepEqual(await readAll(b.body), layer.bytes);
      assert.equal(cdn.headers[0]?.host, `eu.cdn.test:${cdn.port}`);
    } finally {
      proxy.clearFaults();
      await up.close();
      await cdn.stop();
    }
  });

  it('refuses redirects to unlisted or internal hosts without connecting to them', async () => {
    const layer = img.layers[0]!;
    const trap = await startFakeCdn(layer.bytes);
    const up = open(config(proxy.url, { redirectHosts: ['meta.test', '127.0.0.1:1'], redirectPublicHttps: true }), {
      lookup: async (host) => (host === 'meta.test' ? ['169.254.169.254'] : host === 'sneaky.test' ? ['8.8.8.8', '127.0.0.1'] : []),
    });
    try {
      const targets = [
        `http://127.0.0.1:${trap.port}/b`, // loopback but not listed
        `http://localhost:${trap.port}/b`,
        `http://meta.test:${trap.port}/b`, // listed, but resolves to link-local
        `https://sneaky.test:${trap.port}/b`, // public https allowed only when every answer is public
        `file:///etc/passwd`,
      ];
      for (const location of targets) {
        proxy.inject({ match: { method: 'GET', path: new RegExp(`blobs/${layer.digest}$`) }, times: 1, action: { kind: 'status', status: 307, headers: { location } } });
        await assert.rejects(
          up.blob(repo, parseDigest(layer.digest)),
          (e) => code(e) === ErrorCode.UNAVAILABLE && /refused to follow a redirect/.test((e as Error).message),
          location,
        );
      }
      assert.equal(trap.connections(), 0, 'no connection was opened to a refused host');
    } finally {
      proxy.clearFaults();
      await up.close();
      await trap.stop();
    }
  });

  it('holds at most maxConcurrentFetches blob bodies in flight; waiting respects abort', async () => {
    const up = open(config(hub.registry.url, { maxConcurrentFetches: 1 }));
    try {
      const [l0, l1] = [img.layers[0]!, img.layers[1]!];
      const first = await up.blob(repo, parseDigest(l0.digest));
      const ac = new AbortController();
      const waiting = up.blob(repo, parseDigest(l1.digest), ac.signal);
      setTimeout(() => ac.abort(new Error('client went away')), 50);
      await assert.rejects(waiting, /client went away/);
      const second = up.blob(repo, parseDigest(l1.digest));
      let settled = false;
      void second.then(() => (settled = true));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(settled, false, 'second fetch waits for the first body');
      assert.deepEqual(await readAll(first.body), l0.bytes);
      assert.deepEqual(await readAll((await second).body), l1.bytes);
    } finally {
      await up.close();
    }
  });

  it('a body cut mid-blob errors the stream (so the caller can resume) and frees the fetch slot', async () => {
    const up = open(config(proxy.url, { maxConcurrentFetches: 1 }));
    try {
      const layer = img.layers[1]!;
      proxy.inject({ match: { method: 'GET', path: new RegExp(`blobs/${layer.digest}$`) }, times: 1, action: { kind: 'truncate', afterBytes: 5000 } });
      const b = await up.blob(repo, parseDigest(layer.digest));
      await assert.rejects(readAll(b.body));
      const again = await up.blob(repo, parseDigest(layer.digest), AbortSignal.timeout(5000), 5000);
      assert.equal(again.offset, 5000);
      assert.deepEqual(await readAll(again.body), layer.bytes.subarray(5000));
    } finally {
      proxy.clearFaults();
      await up.close();
    }
  });

  it('maps 5xx and a dead upstream to UNAVAILABLE', async () => {
    const up = open(config(proxy.url));
    try {
      await up.headManifest(repo, 'v1');
      proxy.inject({ match: { method: 'GET', path: /manifests/ }, times: 1, action: { kind: 'status', status: 502 } });
      await assert.rejects(up.manifest(repo, 'v1'), (e) => code(e) === ErrorCode.UNAVAILABLE);
      const dead = open(config('http://127.0.0.1:1'));
      await assert.rejects(dead.manifest(repo, 'v1'), (e) => code(e) === ErrorCode.UNAVAILABLE && /test-upstream/.test((e as Error).message));
      await dead.close();
    } finally {
      proxy.clearFaults();
      await up.close();
    }
  });
});

describe('upstream client against a token service that omits expires_in and sends only access_token', () => {
  let hub: TokenRegistry;
  let img: TestImage;
  before(async () => {
    hub = await startTokenRegistry({ users: { alice: alice.password }, expiresIn: null, tokenField: 'access_token' });
    img = makeImage({ layers: 1 });
    await pushImage(hub.registry.url, 'library/x', 'v1', img, alice);
  });
  after(() => hub.stop());

  it('uses access_token and assumes a 60 s lifetime (minus a 6 s margin)', async () => {
    const c = clock();
    const up = open(config(hub.registry.url), { now: c.now });
    try {
      const issued = hub.tokens.issued;
      assert.deepEqual((await up.manifest('library/x', 'v1')).bytes, img.manifest);
      c.advance(50_000);
      await up.headManifest('library/x', 'v1');
      assert.equal(hub.tokens.issued - issued, 1);
      c.advance(5_000);
      await up.headManifest('library/x', 'v1');
      assert.equal(hub.tokens.issued - issued, 2);
    } finally {
      await up.close();
    }
  });
});

describe('upstream client against an htpasswd (Basic) registry', () => {
  let reg: RegistryProcess;
  let img: TestImage;
  before(async () => {
    reg = await startBasicRegistry({ alice: alice.password });
    img = makeImage({ layers: 1 });
    await pushImage(reg.url, 'team/app', '1.0', img, alice);
  });
  after(() => reg.stop());

  it('sends Basic credentials from config or a secret file', async () => {
    const dir = await tempDir();
    try {
      const file = join(dir.path, 'pw');
      await writeFile(file, `${alice.password}\n`);
      for (const credentials of [alice, { username: 'alice', passwordFile: file }]) {
        const up = open(config(reg.url, { credentials }));
        try {
          const m = await up.manifest('team/app', '1.0');
          assert.deepEqual(m.bytes, img.manifest);
          const b = await up.blob('team/app', parseDigest(img.layers[0]!.digest) as Digest);
          assert.deepEqual(await readAll(b.body), img.layers[0]!.bytes);
        } finally {
          await up.close();
        }
      }
    } finally {
      await dir.cleanup();
    }
  });

  it('without credentials the upstream refusal is UNAUTHORIZED', async () => {
    const up = open(config(reg.url));
    try {
      await assert.rejects(up.manifest('team/app', '1.0'), (e) => code(e) === ErrorCode.UNAUTHORIZED);
    } finally {
      await up.close();
    }
  });
});

function quietObserver(): NonNullable<UpstreamDeps['observer']> {
  return { request() {}, bytes() {}, rateLimit() {}, throttled() {} };
}
