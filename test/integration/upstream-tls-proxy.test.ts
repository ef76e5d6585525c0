/**
 * The upstream layer's network options against real processes: an https Distribution with a private CA
 * (caFile, insecureSkipVerify, servername), and a forward proxy as HTTPS_PROXY / HTTP_PROXY / NO_PROXY
 * point at (CONNECT tunnels for https, absolute-form requests for http).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Agent, request as undiciRequest } from 'undici';
import { startConnectProxy, type ConnectProxy } from '../helpers/connect-proxy.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { blobPath, getBlob, getManifest, pullAndVerify, show, startMirror } from '../helpers/mirror.js';
import { makeImage, pushImage, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { makeCa, makeServerCert, type TestCa } from '../helpers/tls.js';
import { errorCodes, type WharfProcess } from '../helpers/wharf.js';

/** A name only the proxy can resolve: wharf's own DNS has never heard of it. */
const REGISTRY_NAME = 'registry.wharf.test';

let dir: TempDir;
let ca: TestCa;
/** https, certificate for IP:127.0.0.1 and DNS:registry.wharf.test */
let secure: RegistryProcess;
/** https, certificate for DNS:registry.wharf.test only: reachable by IP only with `servername` */
let named: RegistryProcess;
/** plain http, for HTTP_PROXY */
let plain: RegistryProcess;
let image: TestImage;
/** https "CDN" (a fake: a blob file server) whose certificate only our CA vouches for */
let fakeCdn: { url: string; host: string; server: HttpsServer; hits: number };
const REPO = 'acme/app';

/** Pushes over https trusting `ca` (the shared helper speaks plain http only). */
async function pushOverHttps(baseUrl: string, repo: string, tag: string, x: TestImage, caPem: string, servername?: string): Promise<void> {
  const dispatcher = new Agent({ connect: { ca: caPem, ...(servername ? { servername } : {}) } });
  try {
    for (const b of [x.config, ...x.layers]) {
      const post = await undiciRequest(`${baseUrl}/v2/${repo}/blobs/uploads/`, { method: 'POST', dispatcher });
      await post.body.dump();
      assert.equal(post.statusCode, 202, `POST upload: HTTP ${post.statusCode}`);
      const put = new URL(String(post.headers.location), baseUrl);
      put.searchParams.set('digest', b.digest);
      const res = await undiciRequest(put, { method: 'PUT', dispatcher, body: b.bytes, headers: { 'content-type': 'application/octet-stream' } });
      await res.body.dump();
      assert.equal(res.statusCode, 201, `PUT blob: HTTP ${res.statusCode}`);
    }
    const res = await undiciRequest(`${baseUrl}/v2/${repo}/manifests/${tag}`, {
      method: 'PUT',
      dispatcher,
      body: x.manifest,
      headers: { 'content-type': x.mediaType },
    });
    await res.body.dump();
    assert.equal(res.statusCode, 201, `PUT manifest: HTTP ${res.statusCode}`);
  } finally {
    await dispatcher.close();
  }
}

/** The first JSON log line `pick` accepts, waiting up to 2 s (the access log is written after the response). */
async function logLine(w: WharfProcess, pick: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 2000;
  for (;;) {
    for (const text of w.logs().split('\n')) {
      if (!text.startsWith('{')) continue;
      const l = JSON.parse(text) as Record<string, unknown>;
      if (pick(l)) return l;
    }
    if (Date.now() > deadline) throw new Error(`no such log line in:\n${w.logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const wharfs: WharfProcess[] = [];
const proxies: ConnectProxy[] = [];

/** wharf with one default upstream `up` and the given environment; stopped after the file. */
async function mirror(up: Record<string, unknown>, env: Record<string, string> = {}): Promise<WharfProcess> {
  const w = await startMirror([{ name: 'up', default: true, ...up }], {}, { env });
  wharfs.push(w);
  return w;
}

async function proxy(opts: Parameters<typeof startConnectProxy>[0] = {}): Promise<ConnectProxy> {
  const p = await startConnectProxy(opts);
  proxies.push(p);
  return p;
}

// wharf inherits this process's environment: a developer's proxy settings must not decide what is proxied
for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']) delete process.env[k];

before(async () => {
  dir = await tempDir('wharf-tls-');
  ca = await makeCa(dir.path);
  const [both, dnsOnly] = await Promise.all([
    makeServerCert(ca, { name: 'both', ips: ['127.0.0.1'], dns: [REGISTRY_NAME] }),
    makeServerCert(ca, { name: 'dns-only', ips: [], dns: [REGISTRY_NAME] }),
  ]);
  [secure, named, plain] = await Promise.all([
    startRegistry({ tls: both }),
    startRegistry({ tls: dnsOnly }),
    startRegistry(),
  ]);
  image = makeImage({ layers: 2 });
  const blobs = new Map([image.config, ...image.layers].map((b) => [`/blobs/${b.digest}`, b.bytes]));
  const server = createHttpsServer({ cert: both.pem, key: await readFile(both.keyPath) }, (req, res) => {
    fakeCdn.hits++;
    const body = blobs.get(req.url ?? '');
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cdnHost = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  fakeCdn = { url: `https://${cdnHost}`, host: cdnHost, server, hits: 0 };
  await Promise.all([
    pushOverHttps(secure.url, REPO, '1.0', image, ca.pem),
    pushOverHttps(named.url, REPO, '1.0', image, ca.pem, REGISTRY_NAME),
    pushImage(plain.url, REPO, '1.0', image),
  ]);
});

after(async () => {
  await Promise.all(wharfs.map((w) => w.stop()));
  await Promise.all(proxies.map((p) => p.stop()));
  await Promise.all([secure?.stop(), named?.stop(), plain?.stop()]);
  if (fakeCdn) {
    fakeCdn.server.closeAllConnections();
    await new Promise((r) => fakeCdn.server.close(r));
  }
  await dir?.cleanup();
});

describe('an https upstream with a private CA', () => {
  it('with tls.caFile: a pull (manifest by tag, then every blob) works, digests verified', async () => {
    const w = await mirror({ url: secure.url, tls: { caFile: ca.certPath } });
    await pullAndVerify(w, REPO, '1.0', image);
  });

  let untrusted: WharfProcess;
  it('without caFile: 503 UNAVAILABLE whose message names the untrusted certificate and the fix', async () => {
    untrusted = await mirror({ url: secure.url });
    const res = await getManifest(untrusted, REPO, '1.0');
    assert.equal(res.status, 503, show(res));
    assert.deepEqual(errorCodes(res), ['UNAVAILABLE'], show(res));
    const message = (JSON.parse(res.body.toString('utf8')) as { errors: Array<{ message: string }> }).errors[0]!.message;
    assert.match(message, /certificate not trusted/, `the answer says what is wrong: ${message}`);
    assert.match(message, /tls\.caFile/, `the answer says what to do: ${message}`);
    const blob = await getBlob(untrusted, REPO, image.layers[0]!.digest);
    assert.equal(blob.status, 503, show(blob));
  });

  it('without caFile: the log names the certificate problem', async () => {
    const line = await logLine(untrusted, (l) => l.route === 'manifest' && l.status === 503);
    assert.match(JSON.stringify(line), /certificate/i, JSON.stringify(line));
  });

  it('with insecureSkipVerify and no caFile: the pull works', async () => {
    const w = await mirror({ url: secure.url, tls: { insecureSkipVerify: true } });
    await pullAndVerify(w, REPO, '1.0', image);
  });

  it('servername: a certificate for a DNS name is accepted from an IP URL only with it', async () => {
    const [withName, without] = await Promise.all([
      mirror({ url: named.url, tls: { caFile: ca.certPath, servername: REGISTRY_NAME } }),
      mirror({ url: named.url, tls: { caFile: ca.certPath } }),
    ]);
    await pullAndVerify(withName, REPO, '1.0', image);
    const res = await getManifest(without, REPO, '1.0');
    assert.equal(res.status, 503, show(res));
    assert.deepEqual(errorCodes(res), ['UNAVAILABLE'], show(res));
  });
});

describe('HTTPS_PROXY / HTTP_PROXY / NO_PROXY', () => {
  it('HTTPS_PROXY: the pull goes through a CONNECT tunnel to the upstream', async () => {
    const p = await proxy();
    const w = await mirror({ url: secure.url, tls: { caFile: ca.certPath } }, { HTTPS_PROXY: p.url });
    await pullAndVerify(w, REPO, '1.0', image);
    assert.ok(p.connects.length > 0, 'the proxy was used');
    assert.deepEqual([...new Set(p.connects)], [`127.0.0.1:${secure.port}`], 'every tunnel went to the upstream');
    assert.deepEqual(p.requests, [], 'https is never sent in the clear to the proxy');
  });

  it('NO_PROXY=127.0.0.1 with HTTPS_PROXY set: the pull is direct and the proxy sees nothing', async () => {
    const p = await proxy();
    const w = await mirror({ url: secure.url, tls: { caFile: ca.certPath } }, { HTTPS_PROXY: p.url, NO_PROXY: '127.0.0.1' });
    await pullAndVerify(w, REPO, '1.0', image);
    assert.deepEqual(p.connects, []);
    assert.deepEqual(p.requests, []);
  });

  it('lower-case https_proxy is honoured, and a no_proxy entry with the upstream\'s port turns it off', async () => {
    const [used, bypassed] = await Promise.all([proxy(), proxy()]);
    const [viaProxy, direct] = await Promise.all([
      mirror({ url: secure.url, tls: { caFile: ca.certPath } }, { https_proxy: used.url }),
      mirror({ url: secure.url, tls: { caFile: ca.certPath } }, { https_proxy: bypassed.url, no_proxy: `localhost, 127.0.0.1:${secure.port}` }),
    ]);
    await pullAndVerify(viaProxy, REPO, '1.0', image);
    await pullAndVerify(direct, REPO, '1.0', image);
    assert.deepEqual([...new Set(used.connects)], [`127.0.0.1:${secure.port}`]);
    assert.deepEqual(bypassed.connects, []);
  });

  it('a NO_PROXY entry for another port does not match: the upstream is still proxied', async () => {
    const p = await proxy();
    const w = await mirror({ url: secure.url, tls: { caFile: ca.certPath } }, { HTTPS_PROXY: p.url, NO_PROXY: `127.0.0.1:${secure.port + 1}` });
    await pullAndVerify(w, REPO, '1.0', image);
    assert.deepEqual([...new Set(p.connects)], [`127.0.0.1:${secure.port}`]);
  });

  it('HTTP_PROXY: a plain-http upstream is reached with absolute-form requests through the proxy', async () => {
    const p = await proxy();
    const w = await mirror({ url: plain.url }, { HTTP_PROXY: p.url });
    await pullAndVerify(w, REPO, '1.0', image);
    const manifestUrl = `${plain.url}/v2/${REPO}/manifests/1.0`;
    assert.ok(p.requests.some((r) => r.endsWith(` ${manifestUrl}`)), `manifest request through the proxy: ${p.requests.join('\n')}`);
    for (const b of [image.config, ...image.layers]) {
      assert.ok(p.requests.includes(`GET ${plain.url}/v2/${REPO}/blobs/${b.digest}`), `blob ${b.digest} through the proxy`);
    }
    assert.deepEqual(p.connects, [], 'plain http is not tunnelled');
  });

  it('HTTP_PROXY: the upstream\'s headers timeout holds for absolute-form requests', async (t) => {
    const fault = await startFaultProxy(plain.url);
    t.after(() => fault.stop());
    const p = await proxy();
    const w = await mirror({ url: fault.url, timeouts: { headers: '1s' } }, { HTTP_PROXY: p.url });
    fault.inject({ match: { path: `/v2/${REPO}/manifests/1.0` }, action: { kind: 'delay', ms: 6000 } });
    const started = Date.now();
    const res = await getManifest(w, REPO, '1.0');
    assert.equal(res.status, 503, show(res));
    assert.ok(Date.now() - started < 4000, `answered after ${Date.now() - started} ms`);
    assert.ok(p.requests.some((r) => r.startsWith(`GET ${fault.url}/v2/${REPO}/manifests/1.0`)), p.requests.join('\n'));
  });

  it('HTTPS_PROXY: a host name only the proxy can resolve works, and the proxy on loopback is not vetoed', async () => {
    const p = await proxy({ hosts: { [REGISTRY_NAME]: '127.0.0.1' } });
    const url = `https://${REGISTRY_NAME}:${secure.port}`;
    const w = await mirror({ url, tls: { caFile: ca.certPath } }, { HTTPS_PROXY: p.url });
    await pullAndVerify(w, REPO, '1.0', image);
    assert.deepEqual([...new Set(p.connects)], [`${REGISTRY_NAME}:${secure.port}`], 'the CONNECT target is the upstream by name');
  });

  it('HTTPS_PROXY: the upstream TLS options (servername, insecureSkipVerify) apply inside the tunnel', async () => {
    const p = await proxy();
    const [byName, insecure] = await Promise.all([
      mirror({ url: named.url, tls: { caFile: ca.certPath, servername: REGISTRY_NAME } }, { HTTPS_PROXY: p.url }),
      mirror({ url: secure.url, tls: { insecureSkipVerify: true } }, { HTTPS_PROXY: p.url }),
    ]);
    await pullAndVerify(byName, REPO, '1.0', image);
    await pullAndVerify(insecure, REPO, '1.0', image);
    assert.ok(p.connects.includes(`127.0.0.1:${named.port}`) && p.connects.includes(`127.0.0.1:${secure.port}`), p.connects.join(', '));
  });

  it('NO_PROXY: the upstream TLS options (servername, insecureSkipVerify) apply to the direct connection', async () => {
    const p = await proxy();
    const env = { HTTPS_PROXY: p.url, NO_PROXY: '127.0.0.1' };
    const [byName, insecure] = await Promise.all([
      mirror({ url: named.url, tls: { caFile: ca.certPath, servername: REGISTRY_NAME } }, env),
      mirror({ url: secure.url, tls: { insecureSkipVerify: true } }, env),
    ]);
    await pullAndVerify(byName, REPO, '1.0', image);
    await pullAndVerify(insecure, REPO, '1.0', image);
    assert.deepEqual(p.connects, []);
  });

  describe('blob redirects through a proxy are still checked before any request', () => {
    let fault: FaultProxy;
    before(async () => {
      fault = await startFaultProxy(plain.url);
    });
    after(() => fault?.stop());

    it('a redirect to an unlisted host, or a listed one on a forbidden address, is refused and never reaches the proxy', async (t) => {
      t.after(() => fault.clearFaults());
      const p = await proxy();
      const w = await mirror({ url: fault.url, redirectHosts: ['169.254.169.254'] }, { HTTP_PROXY: p.url, HTTPS_PROXY: p.url });
      const [a, b] = image.layers as [TestImage['layers'][0], TestImage['layers'][0]];
      fault.inject({ match: { path: blobPath(REPO, a.digest) }, action: { kind: 'status', status: 307, headers: { location: `http://127.0.0.2:${plain.port}/x` } } });
      fault.inject({ match: { path: blobPath(REPO, b.digest) }, action: { kind: 'status', status: 307, headers: { location: `http://169.254.169.254/latest/meta-data` } } });
      const manifest = await getManifest(w, REPO, '1.0');
      assert.equal(manifest.status, 200, show(manifest));
      const unlisted = await getBlob(w, REPO, a.digest);
      assert.equal(unlisted.status, 503, show(unlisted));
      assert.match(unlisted.body.toString('utf8'), /refused to follow a redirect to 127\.0\.0\.2.*not in redirectHosts/, show(unlisted));
      const linkLocal = await getBlob(w, REPO, b.digest);
      assert.equal(linkLocal.status, 503, show(linkLocal));
      assert.match(linkLocal.body.toString('utf8'), /refused to follow a redirect to 169\.254\.169\.254.*link-local address/, show(linkLocal));
      assert.ok(p.requests.some((r) => r.startsWith(`GET ${fault.url}/v2/${REPO}/blobs/`)), `the upstream was asked through the proxy: ${p.requests.join('\n')}`);
      const leaked = [...p.requests, ...p.connects].filter((r) => /127\.0\.0\.2|169\.254\.169\.254/.test(r));
      assert.deepEqual(leaked, [], 'no request to a refused redirect target went through the proxy');
    });

    it('insecureSkipVerify is the upstream\'s alone: a CDN it redirects to is still verified, proxied or direct', async (t) => {
      t.after(() => fault.clearFaults());
      const p = await proxy();
      const layer = image.layers[1]!;
      const up = { url: fault.url, redirectHosts: [fakeCdn.host], tls: { insecureSkipVerify: true } };
      const [proxied, direct] = await Promise.all([mirror(up, { HTTP_PROXY: p.url, HTTPS_PROXY: p.url }), mirror(up)]);
      fault.inject({ match: { path: blobPath(REPO, layer.digest) }, action: { kind: 'status', status: 307, headers: { location: `${fakeCdn.url}/blobs/${layer.digest}` } } });
      for (const w of [proxied, direct]) {
        const res = await getBlob(w, REPO, layer.digest);
        assert.equal(res.status, 503, show(res));
        assert.match(res.body.toString('utf8'), /certificate not trusted/, show(res));
      }
      assert.ok(p.connects.includes(fakeCdn.host), `the proxied wharf tunnelled to the CDN: ${p.connects.join(', ')}`);
      assert.equal(fakeCdn.hits, 0, 'no request reached the CDN over an unverified connection');
    });
  });
});
