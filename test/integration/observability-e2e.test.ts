import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { basicHeader, manifestAccept, request, type HttpResponse } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { freePort } from '../helpers/ports.js';
import { startTokenRegistry, type TokenRegistry } from '../helpers/registry.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';

// ---- a tiny reader for the Prometheus text exposition format ----

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(["\\n])/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

function parseValue(v: string): number {
  if (v === '+Inf') return Number.POSITIVE_INFINITY;
  if (v === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(v);
}

/** `name{a="x",b="y"} value [timestamp]` lines; comments and blank lines skipped. Throws on a line it cannot read. */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (m === null) throw new Error(`unreadable exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/gy;
    let consumed = 0;
    for (let l = re.exec(body); l !== null; l = re.exec(body)) {
      labels[l[1]!] = unescapeLabel(l[2]!);
      consumed = re.lastIndex;
      if (consumed >= body.length) break;
    }
    if (consumed !== body.length) throw new Error(`unreadable labels: ${JSON.stringify(line)}`);
    out.push({ name: m[1]!, labels, value: parseValue(m[3]!) });
  }
  return out;
}

class Snapshot {
  constructor(readonly samples: Sample[]) {}

  /** Sum over every series of `name` whose labels include `match` (0 when there is none). */
  sum(name: string, match: Record<string, string> = {}): number {
    return this.series(name, match).reduce((a, s) => a + s.value, 0);
  }

  series(name: string, match: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  }
}

async function scrape(url: string, headers: Record<string, string> = {}): Promise<Snapshot> {
  const res = await request(url, { headers });
  assert.equal(res.status, 200, `GET ${url}: ${describeResponse(res)}`);
  return new Snapshot(parseExposition(res.body.toString('utf8')));
}

function delta(a: Snapshot, b: Snapshot, name: string, match: Record<string, string> = {}): number {
  return b.sum(name, match) - a.sum(name, match);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the system under test: wharf → fault proxy → real Distribution behind a token service ----

const HUB_USER = 'hubuser';
// Distinctive, so a grep of the logs cannot match anything by accident.
const HUB_PASSWORD = `pw-${randomUUID()}`;
const CLIENT_AUTH = `Bearer client-secret-${randomUUID()}`;
const REPO = 'obsteam/obsapp';
// Long enough for a cold and a warm pull on a loaded CI machine (~0.4 s idle); the stale test waits it out.
const FRESHNESS_MS = 3000;

describe('wharf observability, black-box against a wharf process and a real upstream', () => {
  let hub: TokenRegistry;
  let proxy: FaultProxy;
  let wharf: WharfProcess;
  let img: TestImage;
  const metricsUrl = () => `${wharf.url}/metrics`;
  /** Time of the last request that made wharf (re)check the tag v1 upstream. */
  let v1CheckedAt = 0;
  /** when the cold pull had finished: the tag was confirmed by then (v1CheckedAt is only a lower bound) */
  let v1CheckedBy = 0;

  before(async () => {
    hub = await startTokenRegistry({ users: { [HUB_USER]: HUB_PASSWORD }, anonymous: 'none' });
    img = makeImage({ layers: 2 });
    await pushImage(hub.registry.url, REPO, 'v1', img, { username: HUB_USER, password: HUB_PASSWORD });
    await pushImage(hub.registry.url, REPO, 'v2', makeImage({ layers: 1 }), { username: HUB_USER, password: HUB_PASSWORD });
    proxy = await startFaultProxy(hub.registry.url);
    wharf = await startWharf({
      config: {
        upstreams: [
          {
            name: 'hub',
            url: proxy.url,
            default: true,
            aliases: ['hub.test'],
            tagFreshness: `${FRESHNESS_MS / 1000}s`,
            credentials: { username: HUB_USER, password: HUB_PASSWORD },
          },
        ],
      },
    });
  });
  after(async () => {
    await wharf?.stop();
    await proxy?.stop();
    await hub?.stop();
  });

  const getManifest = (ref: string, headers: Record<string, string> = {}): Promise<HttpResponse> =>
    request(`${wharf.url}/v2/${REPO}/manifests/${ref}`, { headers: { accept: manifestAccept, ...headers } });
  const getBlob = (digest: string, headers: Record<string, string> = {}): Promise<HttpResponse> =>
    request(`${wharf.url}/v2/${REPO}/blobs/${digest}`, { headers });

  /** Manifest by tag, then config and layers, each checked against what was pushed. */
  async function pull(): Promise<void> {
    const m = await getManifest('v1');
    assert.equal(m.status, 200, describeResponse(m));
    assert.equal(m.headers['docker-content-digest'], img.manifestDigest);
    for (const b of [img.config, ...img.layers]) {
      const res = await getBlob(b.digest);
      assert.equal(res.status, 200, describeResponse(res));
      assert.equal(sha256(res.body), b.digest);
    }
  }
  const blobBytes = () => [img.config, ...img.layers].reduce((a, b) => a + b.bytes.length, 0);
  /** Blob bodies exactly; manifest bodies may or may not be counted as well (today they are not). */
  const assertServed = (n: number): void => {
    const ok = [blobBytes(), blobBytes() + img.manifest.length];
    assert.ok(ok.includes(n), `bytes served grew by ${n}; expected one of ${ok.join(', ')}`);
  };

  it('a cold pull counts tag and blob misses, prefetched blobs, upstream bytes and upstream requests', async () => {
    const s0 = await scrape(metricsUrl());
    proxy.reset();
    const tokensBefore = hub.tokens.requests.length;
    v1CheckedAt = Date.now();
    await pull();
    v1CheckedBy = Date.now();
    // Prefetch (on by default) counts each blob once it has settled, which may be a moment after the client's last byte.
    const blobs = 1 + img.layers.length;
    let s1 = await scrape(metricsUrl());
    for (let i = 0; i < 50 && delta(s0, s1, 'wharf_prefetch_blobs_total', { upstream: 'hub' }) < blobs; i++) {
      await sleep(100);
      s1 = await scrape(metricsUrl());
    }

    assert.ok(proxy.count({ path: `/v2/${REPO}/manifests/v1` }) >= 1, 'the cold pull went upstream');
    assert.equal(delta(s0, s1, 'wharf_cache_requests_total', { kind: 'tag', outcome: 'miss' }), 1);
    assert.equal(delta(s0, s1, 'wharf_cache_requests_total', { kind: 'tag', outcome: 'hit' }), 0);
    // Every blob the manifest names was fetched ahead (or, had the client been first, found on its way)...
    assert.equal(delta(s0, s1, 'wharf_prefetch_blobs_total', { upstream: 'hub', result: 'fetched' }) + delta(s0, s1, 'wharf_prefetch_blobs_total', { upstream: 'hub', result: 'present' }), blobs);
    assert.equal(delta(s0, s1, 'wharf_prefetch_blobs_total', { result: 'failed' }), 0);
    // ...so the client's asks joined those downloads or found them done, and each blob crossed the upstream link once.
    const asks = ['miss', 'coalesced', 'hit'].map((outcome) => delta(s0, s1, 'wharf_cache_requests_total', { kind: 'blob', outcome }));
    assert.equal(asks.reduce((a, b) => a + b, 0), blobs, `blob miss/coalesced/hit: ${asks.join('/')}`);
    assert.equal(proxy.requests.filter((r) => r.method === 'GET' && r.status === 200 && r.path.includes('/blobs/')).length, blobs);
    assertServed(delta(s0, s1, 'wharf_bytes_served_total', { source: 'upstream' }) + delta(s0, s1, 'wharf_bytes_served_total', { source: 'cache' }));

    const upReqs = delta(s0, s1, 'wharf_upstream_requests_total', { upstream: 'hub' });
    assert.ok(upReqs >= 1 + 1 + img.layers.length, `upstream requests grew by ${upReqs}`);
    // Seen from the other side: what the proxy answered, plus the token requests (wharf counts those too).
    const proxied = (status: number) => proxy.requests.filter((r) => r.status === status && r.method === 'GET').length;
    const tokens200 = hub.tokens.requests.slice(tokensBefore).filter((r) => r.status === 200).length;
    assert.equal(delta(s0, s1, 'wharf_upstream_requests_total', { upstream: 'hub', method: 'GET', status: '200' }), proxied(200) + tokens200);
    assert.equal(delta(s0, s1, 'wharf_upstream_requests_total', { upstream: 'hub', method: 'GET', status: '401' }), proxied(401));
    const upBytes = delta(s0, s1, 'wharf_upstream_bytes_total', { upstream: 'hub' });
    assert.ok(upBytes >= blobBytes(), `upstream bytes grew by ${upBytes}, blobs alone are ${blobBytes()}`);

    assert.ok(delta(s0, s1, 'wharf_http_requests_total', { route: 'manifest', method: 'GET', status: '200' }) >= 1);
    assert.equal(delta(s0, s1, 'wharf_http_requests_total', { route: 'blob', method: 'GET', status: '200' }), 1 + img.layers.length);
  });

  it('a warm pull within tagFreshness counts hits and cache bytes, and sends nothing upstream', async () => {
    const s0 = await scrape(metricsUrl());
    proxy.reset();
    await pull();
    const elapsed = Date.now() - v1CheckedAt;
    const s1 = await scrape(metricsUrl());
    // Without this the test would measure a revalidation, not a warm pull.
    assert.ok(elapsed < FRESHNESS_MS, `warm pull finished ${elapsed} ms after the cold one; freshness is ${FRESHNESS_MS} ms`);

    assert.equal(proxy.count(), 0, `no upstream traffic: ${JSON.stringify(proxy.requests)}`);
    assert.equal(delta(s0, s1, 'wharf_cache_requests_total', { kind: 'tag', outcome: 'hit' }), 1);
    assert.equal(delta(s0, s1, 'wharf_cache_requests_total', { kind: 'blob', outcome: 'hit' }), 1 + img.layers.length);
    assert.equal(delta(s0, s1, 'wharf_cache_requests_total', { outcome: 'miss' }), 0);
    assertServed(delta(s0, s1, 'wharf_bytes_served_total', { source: 'cache' }));
    assert.equal(delta(s0, s1, 'wharf_bytes_served_total', { source: 'upstream' }), 0);
    assert.equal(delta(s0, s1, 'wharf_upstream_requests_total'), 0);
    assert.equal(delta(s0, s1, 'wharf_upstream_bytes_total'), 0);
  });

  it('a tag past tagFreshness with the upstream failing is served stale and counted as stale', async () => {
    await sleep(Math.max(0, v1CheckedBy + FRESHNESS_MS + 200 - Date.now()));
    proxy.inject({ match: { path: `/v2/${REPO}/manifests/v1` }, action: { kind: 'status', status: 503, body: 'down for maintenance' } });
    try {
      const s0 = await scrape(metricsUrl());
      proxy.reset();
      const m = await getManifest('v1');
      const s1 = await scrape(metricsUrl());
      assert.equal(m.status, 200, describeResponse(m));
      assert.equal(m.headers['docker-content-digest'], img.manifestDigest);
      assert.ok(proxy.count({ path: `/v2/${REPO}/manifests/v1` }) >= 1, 'wharf did try to revalidate');
      assert.equal(delta(s0, s1, 'wharf_cache_requests_total', { kind: 'tag', outcome: 'stale' }), 1);
      assert.equal(delta(s0, s1, 'wharf_cache_requests_total', { kind: 'tag', outcome: 'hit' }), 0);
      assert.ok(delta(s0, s1, 'wharf_upstream_requests_total', { upstream: 'hub', status: '503' }) >= 1);

      // An upstream that resets the connection instead of answering: still stale, and an 'error' status upstream.
      proxy.clearFaults();
      proxy.inject({ match: { path: `/v2/${REPO}/manifests/v1` }, action: { kind: 'drop' } });
      const m2 = await getManifest('v1');
      const s2 = await scrape(metricsUrl());
      assert.equal(m2.status, 200, describeResponse(m2));
      assert.equal(m2.headers['docker-content-digest'], img.manifestDigest);
      assert.equal(delta(s1, s2, 'wharf_cache_requests_total', { kind: 'tag', outcome: 'stale' }), 1);
      assert.ok(delta(s1, s2, 'wharf_upstream_requests_total', { upstream: 'hub', status: 'error' }) >= 1);
    } finally {
      proxy.clearFaults();
    }
  });

  it('ratelimit-* headers on upstream responses become the ratelimit gauges', async () => {
    proxy.inject({
      match: { path: `/v2/${REPO}/manifests/v2` },
      action: { kind: 'headers', headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '42;w=21600' } },
    });
    try {
      const m = await getManifest('v2');
      assert.equal(m.status, 200, describeResponse(m));
      const s = await scrape(metricsUrl());
      assert.deepEqual(s.series('wharf_upstream_ratelimit_limit', { upstream: 'hub' }).map((x) => x.value), [100]);
      assert.deepEqual(s.series('wharf_upstream_ratelimit_remaining', { upstream: 'hub' }).map((x) => x.value), [42]);
    } finally {
      proxy.clearFaults();
    }
  });

  it('an upstream 429 for an uncached tag reaches the client as TOOMANYREQUESTS with Retry-After and is counted', async () => {
    const path = `/v2/${REPO}/manifests/never-cached`;
    proxy.inject({ match: { path }, action: { kind: 'status', status: 429, headers: { 'Retry-After': '2' }, body: '{"errors":[]}' } });
    try {
      const s0 = await scrape(metricsUrl());
      const m = await getManifest('never-cached');
      const s1 = await scrape(metricsUrl());
      assert.equal(m.status, 429, describeResponse(m));
      assert.deepEqual(errorCodes(m), ['TOOMANYREQUESTS']);
      const retryAfter = Number(m.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 2, `Retry-After: ${m.headers['retry-after']}`);
      assert.equal(delta(s0, s1, 'wharf_upstream_throttled_total', { upstream: 'hub' }), 1);
      assert.equal(delta(s0, s1, 'wharf_http_requests_total', { route: 'manifest', method: 'GET', status: '429' }), 1);
    } finally {
      proxy.clearFaults();
    }
  });

  it('label values stay bounded: no repository name, tag or path anywhere', async () => {
    // Paths no route matches (or only half) are where a path could slip into a label.
    for (const p of [`/obsteam/obsapp/x`, `/v2/obsteam/obsapp/manifests/`, `/v2/obsteam/obsapp/nonsense/v1`, `/v2/obsteam/obsapp/tags/list`]) {
      await request(`${wharf.url}${p}`);
    }
    const s = await scrape(metricsUrl());
    assert.ok(s.samples.length > 0);
    const bad = s.samples.filter((x) =>
      Object.values(x.labels).some((v) => v.includes('/') || v.includes('obsapp') || v.includes('obsteam') || v.includes('never-cached')),
    );
    assert.deepEqual(bad, []);
    // Every route label is a route id, not a path.
    const routes = new Set(s.series('wharf_http_requests_total').map((x) => x.labels.route));
    for (const r of routes) assert.match(r ?? '', /^[a-z_]+$/);
    assert.ok(routes.has('manifest') && routes.has('blob'), `routes seen: ${[...routes].join(',')}`);
  });

  it('/healthz and /readyz answer with JSON bodies', async () => {
    const h = await request(`${wharf.url}/healthz`);
    assert.equal(h.status, 200, describeResponse(h));
    assert.deepEqual(JSON.parse(h.body.toString('utf8')), { status: 'ok' });
    const r = await request(`${wharf.url}/readyz`);
    assert.equal(r.status, 200, describeResponse(r));
    const body = JSON.parse(r.body.toString('utf8')) as { ready?: unknown; checks?: Record<string, unknown> };
    assert.equal(body.ready, true);
    assert.equal(typeof body.checks, 'object');
    assert.equal(body.checks?.dataDir, 'ok');
    assert.equal(body.checks?.freeSpace, 'ok');
  });

  it('logs one JSON line per request, without credentials', async () => {
    const ids: Array<{ id: string; route: string; status: number }> = [];
    const send = async (route: string, url: string, headers: Record<string, string> = {}): Promise<void> => {
      const id = `obs-${randomUUID()}`;
      const res = await request(url, { headers: { 'x-request-id': id, ...headers } });
      assert.equal(res.headers['x-request-id'], id);
      ids.push({ id, route, status: res.status });
    };
    // A client Authorization header that wharf (open, no auth configured) ignores must not be logged either.
    await send('manifest', `${wharf.url}/v2/${REPO}/manifests/${img.manifestDigest}`, { accept: manifestAccept, authorization: CLIENT_AUTH });
    await send('blob', `${wharf.url}/v2/${REPO}/blobs/${img.layers[0]!.digest}`, { authorization: CLIENT_AUTH });
    await send('manifest', `${wharf.url}/v2/${REPO}/manifests/no-such-tag`, { accept: manifestAccept });
    await send('healthz', `${wharf.url}/healthz`);

    // The line is written when the response has closed, which can trail the client's 'end' a little.
    const lines = async (): Promise<Array<Record<string, unknown>>> => {
      const out: Array<Record<string, unknown>> = [];
      for (const l of wharf.logs().split('\n')) {
        if (!l.startsWith('{')) continue;
        try {
          out.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          // a partial line still being written
        }
      }
      return out;
    };
    let parsed = await lines();
    for (let i = 0; i < 40 && !ids.every((x) => parsed.some((p) => p.reqId === x.id)); i++) {
      await sleep(50);
      parsed = await lines();
    }
    for (const x of ids) {
      const mine = parsed.filter((p) => p.reqId === x.id);
      assert.equal(mine.length, 1, `exactly one log line for ${x.route} request ${x.id}; got ${JSON.stringify(mine)}`);
      const line = mine[0]!;
      assert.equal(line.route, x.route);
      assert.equal(line.status, x.status);
      assert.equal(typeof line.ms, 'number');
      assert.ok((line.ms as number) >= 0);
    }
    // Every request line of the whole run is JSON with the fields an operator filters on.
    const requestLines = parsed.filter((p) => p.reqId !== undefined);
    assert.ok(requestLines.length >= ids.length);
    for (const p of requestLines) {
      assert.equal(typeof p.route, 'string', JSON.stringify(p));
      assert.equal(typeof p.status, 'number', JSON.stringify(p));
      assert.equal(typeof p.ms, 'number', JSON.stringify(p));
    }

    // The upstream login really was used (anonymous pulls are refused), so its password was in wharf's hands.
    assert.ok(hub.tokens.requests.some((r) => r.user === HUB_USER && r.status === 200), 'wharf logged in upstream');
    const all = wharf.logs();
    const basic = basicHeader({ username: HUB_USER, password: HUB_PASSWORD }).slice('Basic '.length);
    assert.ok(!all.includes(HUB_PASSWORD), 'the upstream password is in the logs');
    assert.ok(!all.includes(basic), 'the upstream Basic credentials are in the logs');
    assert.ok(!all.includes(CLIENT_AUTH.slice('Bearer '.length)), 'a client Authorization value is in the logs');
  });
});

describe('metrics on a separate listener with Basic auth', () => {
  let wharf: WharfProcess;
  let metricsPort: number;
  const creds = { username: 'prom', password: `metrics-${randomUUID()}` };

  before(async () => {
    metricsPort = await freePort();
    wharf = await startWharf({
      config: { upstreams: [], metrics: { listen: `127.0.0.1:${metricsPort}`, ...creds } },
    });
  });
  after(async () => {
    await wharf?.stop();
  });

  it('asks for credentials, serves metrics with them, and leaves /metrics off the main port', async () => {
    const url = `http://127.0.0.1:${metricsPort}/metrics`;
    const anon = await request(url);
    assert.equal(anon.status, 401, describeResponse(anon));
    assert.match(anon.headers['www-authenticate'] ?? '', /^Basic /i);
    assert.ok(!anon.body.toString('utf8').includes('wharf_'), 'no metrics leak with the 401');

    const wrong = await request(url, { headers: { authorization: basicHeader({ ...creds, password: 'nope' }) } });
    assert.equal(wrong.status, 401, describeResponse(wrong));

    await request(`${wharf.url}/v2/`);
    const s = await scrape(url, { authorization: basicHeader(creds) });
    assert.ok(s.sum('wharf_http_requests_total', { route: 'base', method: 'GET', status: '200' }) >= 1);

    const main = await request(`${wharf.url}/metrics`);
    assert.equal(main.status, 404, describeResponse(main));
    const mainAuthed = await request(`${wharf.url}/metrics`, { headers: { authorization: basicHeader(creds) } });
    assert.equal(mainAuthed.status, 404, describeResponse(mainAuthed));
    assert.ok(!wharf.logs().includes(creds.password), 'the metrics password is in the logs');
  });
});
