/**
 * Hostile input from the outbound side (issue 7): names, token realms and redirects that try to steer
 * wharf to an address its configuration does not allow, and upstream bodies that are too large, never
 * end, drip, or carry the wrong bytes. Attempts are recorded at the upstream client's connector
 * (in-process: `onConnect`; child process: its `upstream connect` debug lines), and a trap listener on
 * an unconfigured loopback port must see nothing. Everything stays on 127.0.0.1.
 *
 * Already covered elsewhere, not repeated here: unlisted loopback / `localhost` / listed-but-link-local
 * redirects and file:// in-process (upstream-client.test.ts), a redirect to the trap and `ns=`/prefix of
 * the trap's host end to end (mirror-auth.test.ts), more than five redirects (unit/upstream-client),
 * corrupted same-length blobs and resumed truncations (mirror-faults.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { createUpstream, type UpstreamClient } from '../../src/upstream/index.js';
import { createDispatcher, type ConnectAttempt } from '../../src/upstream/network.js';
import { ErrorCode, isRegistryError, parseDigest } from '../../src/oci/index.js';
import { assertError, getBlob, getManifest, show, sleep, startTrap, type Trap } from '../helpers/mirror.js';
import { makeImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { upstreamConfig } from '../helpers/upstream-config.js';
import { errorCodes, rawRequest, startWharf, waitOnDisk, type WharfProcess } from '../helpers/wharf.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A fake registry (behaviour no real one will produce on demand): per-path handlers, every request recorded. */
interface FakeRegistry {
  url: string;
  port: number;
  requests: Array<{ method: string; path: string; host: string }>;
  /** handler for an exact path; `/v2/` answers 200 unless replaced */
  on(path: string, h: Handler): void;
  count(path: string): number;
  stop(): Promise<void>;
}

async function startFakeRegistry(): Promise<FakeRegistry> {
  const routes = new Map<string, Handler>();
  const requests: FakeRegistry['requests'] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ method: req.method ?? 'GET', path, host: req.headers.host ?? '' });
    res.on('error', () => {});
    const h = routes.get(path) ?? (path === '/v2/' ? (_q: IncomingMessage, r: ServerResponse) => r.writeHead(200).end('{}') : undefined);
    if (h) return h(req, res);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    on: (path, h) => void routes.set(path, h),
    count: (path) => requests.filter((r) => r.path === path).length,
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const code = (e: unknown): string | undefined => (isRegistryError(e) ? e.code : undefined);

/** Names the in-process tests resolve (no DNS): `*.fake.test` and `elsewhere.test` are this machine. */
const lookup = async (host: string): Promise<string[]> => {
  if (host === 'meta.fake.test') return ['169.254.169.254'];
  if (host === 'ten.fake.test') return ['10.0.0.7'];
  return host.endsWith('.test') ? ['127.0.0.1'] : [];
};

describe('in-process: every connection the upstream client attempts is recorded at its connector', () => {
  let fake: FakeRegistry;
  let trap: Trap;
  let realm = '';
  before(async () => {
    [fake, trap] = await Promise.all([startFakeRegistry(), startTrap()]);
    fake.on('/v2/', (_req, res) => res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="fake"` }).end());
    fake.on('/token', (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t0k","expires_in":300}'));
    fake.on('/v2/a/b/manifests/x', (req, res) => (req.headers.authorization === 'Bearer t0k' ? res.writeHead(404).end() : res.writeHead(401).end()));
  });
  after(async () => {
    await Promise.all([fake?.stop(), trap?.stop()]);
  });

  function client(over: Parameters<typeof upstreamConfig>[1] = {}): { up: UpstreamClient; attempts: ConnectAttempt[] } {
    const attempts: ConnectAttempt[] = [];
    const up = createUpstream(upstreamConfig(`http://registry.fake.test:${fake.port}`, { name: 'fake', ...over }), { lookup, onConnect: (a) => attempts.push(a) });
    return { up, attempts };
  }

  it('a token realm off the upstream host, domain and tokenRealmHosts is refused before any connection', async () => {
    const refused = [
      `http://127.0.0.1:${trap.port}/token`, // same machine, but not the upstream's host name
      `http://elsewhere.test:${trap.port}/token`, // another host (resolves to loopback, like the upstream)
      `http://registry.fake.test.elsewhere.test:${trap.port}/token`,
      'http://169.254.169.254/latest/meta-data',
      `http://meta.fake.test:${trap.port}/token`, // under the domain, but resolves to link-local
      `http://ten.fake.test:${trap.port}/token`, // under the domain, but private while the upstream is loopback
      `ftp://auth.fake.test:${trap.port}/token`,
    ];
    for (const r of refused) {
      realm = r;
      const { up, attempts } = client();
      try {
        await assert.rejects(up.manifest('a/b', 'x'), (e) => code(e) === ErrorCode.UNAVAILABLE && /realm/.test((e as Error).message), r);
        assert.deepEqual(attempts.map((a) => `${a.host}:${a.port}`), [`registry.fake.test:${fake.port}`], `${r}: only the upstream was connected to`);
      } finally {
        await up.close();
      }
    }
    assert.equal(trap.connections, 0);
  });

  it('a realm on the upstream host (other port allowed), under its domain, or in tokenRealmHosts is used', async () => {
    const cases: Array<[string, string[]]> = [
      [`http://registry.fake.test:${fake.port}/token`, []],
      [`http://auth.fake.test:${fake.port}/token`, []],
      [`http://tokens.elsewhere.test:${fake.port}/token`, ['*.elsewhere.test']],
    ];
    for (const [r, tokenRealmHosts] of cases) {
      realm = r;
      const { up, attempts } = client({ tokenRealmHosts });
      try {
        // the token was fetched and presented: the upstream's 404 comes through as MANIFEST_UNKNOWN
        await assert.rejects(up.manifest('a/b', 'x'), (e) => code(e) === ErrorCode.MANIFEST_UNKNOWN, r);
        assert.ok(attempts.some((a) => `${a.host}:${a.port}` === new URL(r).host), `${r}: ${JSON.stringify(attempts)}`);
      } finally {
        await up.close();
      }
    }
  });

  it('redirects to other schemes, metadata, mapped or unspecified addresses are refused before connecting', async () => {
    const layer = randomBytes(1000);
    const digest = parseDigest(sha256(layer));
    const path = `/v2/a/b/blobs/${digest}`;
    const targets = [
      `ftp://127.0.0.1:${trap.port}/b`,
      `gopher://127.0.0.1:${trap.port}/_GET`,
      `data:application/octet-stream;base64,${layer.toString('base64')}`,
      'http://169.254.169.254/latest/meta-data/',
      `http://[::ffff:127.0.0.1]:${trap.port}/b`,
      `http://0.0.0.0:${trap.port}/b`,
      `http://[::1]:${trap.port}/b`,
      `http://2130706433:${trap.port}/b`, // 127.0.0.1 as one number
    ];
    let location = '';
    fake.on('/v2/', (_req, res) => res.writeHead(200).end('{}'));
    fake.on(path, (_req, res) => res.writeHead(307, { location }).end());
    // redirectPublicHttps and a listed loopback port: what is refused is refused despite them
    const { up, attempts } = client({ redirectHosts: ['127.0.0.1:1'], redirectPublicHttps: true });
    try {
      for (const t of targets) {
        location = t;
        await assert.rejects(up.blob('a/b', digest), (e) => code(e) === ErrorCode.UNAVAILABLE && /redirect/.test((e as Error).message), t);
      }
      assert.deepEqual([...new Set(attempts.map((a) => `${a.host}:${a.port}`))], [`registry.fake.test:${fake.port}`]);
      assert.equal(trap.connections, 0);
    } finally {
      await up.close();
    }
  });

  it('the connector itself vetoes a literal internal address (no lookup happens for it) and reports the refusal', async () => {
    const attempts: ConnectAttempt[] = [];
    const dispatcher = createDispatcher(upstreamConfig(fake.url), {
      lookup,
      guard: async (host) => new Error(`no connection to ${host}`),
      observe: (a) => attempts.push(a),
    });
    try {
      await assert.rejects(request(`http://127.0.0.1:${trap.port}/`, { dispatcher }), /no connection to 127\.0\.0\.1/);
      assert.deepEqual(attempts, [{ host: '127.0.0.1', port: trap.port, refused: 'no connection to 127.0.0.1' }]);
      assert.equal(trap.connections, 0);
    } finally {
      await dispatcher.close();
    }
  });
});

// ---- end to end: wharf as a child process ------------------------------------------------------------

/** `host:port` of every `upstream connect` debug line wharf logged, refused ones marked. */
function connectLines(w: WharfProcess): string[] {
  const out: string[] = [];
  for (const line of w.logs().split('\n')) {
    if (!line.includes('"upstream connect"')) continue;
    try {
      const o = JSON.parse(line) as { host: string; port: number; refused?: string };
      out.push(`${o.host}:${o.port}${o.refused ? ' refused' : ''}`);
    } catch {
      // a line cut by the log window
    }
  }
  return out;
}

/** Files anywhere under dataDir named like the digest's hex: a cached copy. */
async function cachedCopies(dataDir: string, digest: string): Promise<string[]> {
  const hex = digest.slice(digest.indexOf(':') + 1);
  const entries = await readdir(dataDir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && e.name.startsWith(hex)).map((e) => join(e.parentPath, e.name));
}

describe('end to end: a wharf whose only upstreams are fakes on 127.0.0.1', () => {
  let fake: FakeRegistry;
  let trap: Trap;
  let w: WharfProcess;
  let img: TestImage;
  let realm = '';
  before(async () => {
    [fake, trap] = await Promise.all([startFakeRegistry(), startTrap()]);
    img = makeImage({ layers: 1, layerSize: 1000 });
    // the same fake as a second upstream named by `localhost`: its challenge names a realm elsewhere
    fake.on('/v2/', (req, res) => {
      if (req.headers.host?.startsWith('localhost')) return res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="fake"` }).end();
      res.writeHead(200).end('{}');
    });
    w = await startWharf({
      config: {
        upstreams: [
          { name: 'fake', url: fake.url, default: true, aliases: ['fake.test'], timeouts: { body: '1s' } },
          { name: 'realm', url: `http://localhost:${fake.port}`, aliases: ['realm.test'] },
        ],
        limits: { maxManifestBytes: '16KiB', maxBlobBytes: '1MiB' },
        cache: { resumeAttempts: 1, fetchTimeout: '20s' },
        log: { level: 'debug' },
      },
    });
  });
  after(async () => {
    await w?.stop();
    await Promise.all([fake?.stop(), trap?.stop()]);
  });

  const onlyFake = (what: string): void => {
    const hosts = new Set(connectLines(w));
    const allowed = new Set([`127.0.0.1:${fake.port}`, `localhost:${fake.port}`]);
    assert.deepEqual([...hosts].filter((h) => !allowed.has(h)), [], `${what}: connections other than the fake upstream`);
    assert.equal(trap.connections, 0, `${what}: the trap was contacted`);
  };

  it('ns= and path prefixes naming internal addresses are NAME_UNKNOWN / refused, and open no connection', async () => {
    const before = fake.requests.length;
    for (const ns of ['127.0.0.2:9', '169.254.169.254', '169.254.169.254:80', `[::1]:${trap.port}`, `0.0.0.0:${trap.port}`]) {
      for (const res of [await getManifest(w, 'x', 'y', { ns }), await getBlob(w, 'x', sha256('x'), { ns })]) {
        const ok = (res.status === 404 && errorCodes(res).includes('NAME_UNKNOWN')) || (res.status === 400 && errorCodes(res).includes('NAME_INVALID'));
        assert.ok(ok, `?ns=${ns}: ${show(res)}`);
      }
    }
    assert.equal(fake.requests.length, before, 'an unknown ns is not passed to the default upstream either');
    // a host-looking first segment that is no alias is just a repository name of the default upstream
    for (const p of [`/v2/127.0.0.2:9/x/manifests/y`, `/v2/169.254.169.254/latest/manifests/y`, `/v2/127.0.0.1:${trap.port}/x/manifests/y`]) {
      const res = await rawRequest(w, 'GET', p);
      assert.ok(res.status >= 400 && res.status < 500 && errorCodes(res).length > 0, `${p}: ${show(res)}`);
    }
    await sleep(100);
    onlyFake('names');
  });

  it('a challenge naming a realm on another host fails the pull with UNAVAILABLE and contacts no realm', async () => {
    for (const r of [`http://127.0.0.1:${trap.port}/token`, `http://auth.registry.example:${trap.port}/token`, 'http://169.254.169.254/token']) {
      realm = r;
      const res = await getManifest(w, 'acme/app', '1', { ns: 'realm.test' });
      assertError(res, 503, 'UNAVAILABLE', `realm ${r}`);
      assert.match(res.body.toString(), /realm/, 'the error says the realm was refused');
    }
    await sleep(100);
    onlyFake('realms');
  });

  it('blob redirects to the trap, other schemes, link-local or past the bound are not followed and not cached', async () => {
    const blob = img.layers[0]!;
    const path = `/v2/redir/blobs/${blob.digest}`;
    let hops = 0;
    let location = '';
    fake.on(path, (_req, res) => res.writeHead(307, { location: location === 'loop' ? `${path}?hop=${++hops}` : location }).end());
    for (const t of [`http://127.0.0.1:${trap.port}/b`, `file:///etc/passwd`, `ftp://127.0.0.1:${trap.port}/b`, `gopher://127.0.0.1:${trap.port}/_x`, `data:,hello`, 'http://169.254.169.254/latest/', 'loop']) {
      location = t;
      const res = await getBlob(w, 'redir', blob.digest);
      assert.ok(res.status >= 500, `redirect to ${t}: ${show(res)}`);
    }
    assert.equal(hops, 6, 'a redirect loop is followed five times, then given up');
    await sleep(100);
    onlyFake('redirects');
    assert.deepEqual(await cachedCopies(w.dataDir, blob.digest), []);
  });

  describe('hostile manifest bodies are cut off, answered with an error, and never cached', () => {
    const big = Buffer.alloc(20 * 1024, 0x20);
    const cases: Array<[string, Handler, number, string]> = [
      ['over the size limit with Content-Length', (_q, r) => r.writeHead(200, { 'content-type': img.mediaType, 'content-length': String(big.length) }).end(big), 502, 'MANIFEST_INVALID'],
      ['over the size limit, chunked', (_q, r) => {
        r.writeHead(200, { 'content-type': img.mediaType });
        for (let i = 0; i < 20; i++) r.write(big.subarray(i * 1024, (i + 1) * 1024));
        r.end();
      }, 502, 'MANIFEST_INVALID'],
      ['a body that never ends', (_q, r) => {
        r.writeHead(200, { 'content-type': img.mediaType });
        const t = setInterval(() => r.write(Buffer.alloc(4096, 0x20)), 5);
        r.on('close', () => clearInterval(t));
      }, 502, 'MANIFEST_INVALID'],
      ['a drip that never pauses for timeouts.body but outlasts it', (_q, r) => {
        r.writeHead(200, { 'content-type': img.mediaType, 'content-length': String(img.manifest.length) });
        let at = 0;
        const t = setInterval(() => {
          r.write(img.manifest.subarray(at, at + 16));
          at += 16;
          if (at >= img.manifest.length) r.end();
        }, 150);
        r.on('close', () => clearInterval(t));
      }, 503, 'UNAVAILABLE'],
    ];
    cases.forEach(([what, handler, status, errCode], i) => {
      it(what, async () => {
        const path = `/v2/hostile/m${i}/manifests/1`;
        fake.on(path, handler);
        const started = Date.now();
        const res = await getManifest(w, `hostile/m${i}`, '1');
        assertError(res, status, errCode, what);
        assert.ok(Date.now() - started < 5000, `cut off in ${Date.now() - started} ms`);
        // fixed upstream: fetched again (nothing was cached) and served
        fake.on(path, (_q, r) => r.writeHead(200, { 'content-type': img.mediaType, 'docker-content-digest': img.manifestDigest }).end(img.manifest));
        const again = await getManifest(w, `hostile/m${i}`, '1');
        assert.equal(again.status, 200, show(again));
        assert.equal(sha256(again.body), img.manifestDigest);
        assert.equal(fake.count(path), 2, 'the second request went upstream again');
      });
    });
  });

  describe('hostile blob bodies are cut off and never cached; once the upstream is fixed the blob is served', () => {
    const cases: Array<[string, (bytes: Buffer) => Handler]> = [
      ['longer than the digest (Content-Length says so too)', (b) => (_q, r) => r.writeHead(200, { 'content-length': String(b.length + 100) }).end(Buffer.concat([b, Buffer.alloc(100, 7)]))],
      ['shorter than the digest (Content-Length says so too)', (b) => (_q, r) => r.writeHead(200, { 'content-length': String(b.length - 100) }).end(b.subarray(0, b.length - 100))],
      ['shorter than its Content-Length, every time', (b) => (_q, r) => {
        r.writeHead(200, { 'content-length': String(b.length) });
        r.write(b.subarray(0, b.length / 2), () => r.destroy());
      }],
      ['a body without length that never ends (cut at limits.maxBlobBytes)', () => (_q, r) => {
        r.writeHead(200);
        const t = setInterval(() => r.write(Buffer.alloc(64 * 1024, 1)), 2);
        r.on('close', () => clearInterval(t));
      }],
      ['a drip that stalls longer than timeouts.body', (b) => (_q, r) => {
        r.writeHead(200, { 'content-length': String(b.length) });
        r.write(b.subarray(0, 1000));
        const t = setTimeout(() => r.end(b.subarray(1000)), 4000);
        r.on('close', () => clearTimeout(t));
      }],
    ];
    cases.forEach(([what, make], i) => {
      it(what, async () => {
        const bytes = randomBytes(200_000);
        const digest = sha256(bytes);
        const repo = `hostile/b${i}`;
        const path = `/v2/${repo}/blobs/${digest}`;
        fake.on(path, make(bytes));
        const started = Date.now();
        const first = await getBlob(w, repo, digest).catch((e: Error) => e);
        if (!(first instanceof Error)) {
          assert.ok(!(first.status === 200 && sha256(first.body) === digest), `not served as the blob: ${first.status}, ${first.body.length} bytes`);
          assert.ok(first.status !== 200 || first.body.length < bytes.length, `a 200 is cut short: ${first.body.length} bytes`);
        }
        assert.ok(Date.now() - started < 10_000, `cut off in ${Date.now() - started} ms`);
        await sleep(200);
        assert.deepEqual(await cachedCopies(w.dataDir, digest), [], 'no copy in the data directory');
        const asked = fake.count(path);
        fake.on(path, (_q, r) => r.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes));
        const again = await getBlob(w, repo, digest);
        assert.equal(again.status, 200, show(again));
        assert.equal(sha256(again.body), digest);
        assert.equal(fake.count(path), asked + 1, 'fetched again from upstream');
        await waitOnDisk(w.dataDir, [digest]);
        assert.equal((await cachedCopies(w.dataDir, digest)).length, 1, 'the good copy is cached, once');
      });
    });
  });
});
