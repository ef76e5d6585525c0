/**
 * Upstream tag lists through wharf: read within `limits.maxUpstreamTagPages` / `limits.maxUpstreamTags`,
 * one upstream read however many clients ask at once, none at all within the tag freshness window, and
 * `/v2/` keeps answering while a large list is read.
 *
 * The upstream is a FAKE: a loopback HTTP server that serves only `GET /v2/<repo>/tags/list`, paged with
 * `Link` headers, because Distribution 2.8 would take minutes to hold 2,000,000 tags.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

/** Pages per repository and tags per page of the fake upstream. */
const REPOS: Record<string, { pages: number; perPage: number }> = {
  'acme/many': { pages: 50, perPage: 100 },
  'acme/big': { pages: 100, perPage: 20_000 },
};

const pad = (n: number) => String(n).padStart(6, '0');
/** Tag `i` of page `p`: zero-padded, so the upstream's order is the sorted order. */
const tagName = (p: number, i: number) => `t-${pad(p)}-${pad(i)}`;

interface FakeUpstream {
  url: string;
  /** tags/list requests per repository */
  requests: Map<string, number>;
  /** while true, tags/list answers 503 */
  down: boolean;
  close(): Promise<void>;
}

async function startFakeUpstream(): Promise<FakeUpstream> {
  const requests = new Map<string, number>();
  let down = false;
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://fake');
    if (u.pathname === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const m = /^\/v2\/(.+)\/tags\/list$/.exec(u.pathname);
    const repo = m?.[1];
    const spec = repo === undefined ? undefined : REPOS[repo];
    if (repo === undefined || spec === undefined) {
      return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}');
    }
    requests.set(repo, (requests.get(repo) ?? 0) + 1);
    if (down) return void res.writeHead(503, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAVAILABLE","message":"down"}]}');
    const p = Number(u.searchParams.get('page') ?? '0');
    const tags = Array.from({ length: spec.perPage }, (_, i) => tagName(p, i));
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (p + 1 < spec.pages) headers.link = `</v2/${repo}/tags/list?page=${p + 1}>; rel="next"`;
    // A little latency per page, as a real upstream has: a listing lasts long enough to ping /v2/ during it.
    setTimeout(() => res.writeHead(200, headers).end(JSON.stringify({ name: repo, tags })), 50);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get down() {
      return down;
    },
    set down(v: boolean) {
      down = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function tagsOf(body: Buffer): string[] {
  return (JSON.parse(body.toString('utf8')) as { tags: string[] }).tags;
}

describe('upstream tag lists', () => {
  let fake: FakeUpstream;
  let w: WharfProcess;
  before(async () => {
    fake = await startFakeUpstream();
    w = await startWharf({
      config: {
        upstreams: [{ name: 'fake', url: fake.url, default: true, tagFreshness: '1h' }],
        limits: { maxUpstreamTagPages: 10, maxUpstreamTags: 100_000 },
      },
    });
  });
  after(async () => {
    await w?.stop();
    await fake?.close();
  });

  it('stops at limits.maxUpstreamTagPages and serves the list from cache within the freshness window', async () => {
    const res = await request(`${w.url}/v2/acme/many/tags/list`, { timeoutMs: 60_000 });
    assert.equal(res.status, 200, describeResponse(res));
    const expected = Array.from({ length: 10 }, (_, p) => Array.from({ length: 100 }, (_, i) => tagName(p, i))).flat();
    assert.deepEqual(tagsOf(res.body), expected, 'the first 10 pages, sorted');
    assert.equal(fake.requests.get('acme/many'), 10, 'no page past the bound was asked for');
    // The warning reaches the log pipe a moment after the answer.
    for (let i = 0; i < 100 && !/upstream tag list cut at its bound/.test(w.logs()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(w.logs(), /"repository":"acme\/many".*"bound":"limits.maxUpstreamTagPages".*upstream tag list cut at its bound/);

    const again = await request(`${w.url}/v2/acme/many/tags/list`);
    assert.deepEqual(tagsOf(again.body), expected);
    const paged = await request(`${w.url}/v2/acme/many/tags/list?n=5&last=${tagName(3, 97)}`);
    assert.equal(paged.status, 200, describeResponse(paged));
    assert.deepEqual(tagsOf(paged.body), [tagName(3, 98), tagName(3, 99), tagName(4, 0), tagName(4, 1), tagName(4, 2)]);
    assert.match(paged.headers.link ?? '', /rel="next"/);
    assert.equal(fake.requests.get('acme/many'), 10, 'no upstream request within the freshness window');
  });

  it('stops at limits.maxUpstreamTags, reads once for concurrent clients, and /v2/ keeps answering meanwhile', async () => {
    const listing = Promise.all([1, 2].map(() => request(`${w.url}/v2/acme/big/tags/list`, { timeoutMs: 120_000 })));
    let done = false;
    void listing.finally(() => (done = true));
    let pings = 0;
    let slowest = 0;
    while (!done) {
      const t0 = Date.now();
      const ping = await request(`${w.url}/v2/`, { timeoutMs: 30_000 });
      slowest = Math.max(slowest, Date.now() - t0);
      assert.equal(ping.status, 200, describeResponse(ping));
      pings++;
    }
    const [a, b] = await listing;
    for (const r of [a!, b!]) {
      assert.equal(r.status, 200, describeResponse(r));
      const tags = tagsOf(r.body);
      assert.equal(tags.length, 100_000, 'cut at limits.maxUpstreamTags');
      assert.equal(tags[0], tagName(0, 0));
      assert.equal(tags[tags.length - 1], tagName(4, 19_999));
    }
    assert.equal(fake.requests.get('acme/big'), 5, 'one read of 5 pages shared by both clients');
    assert.ok(pings >= 2, `/v2/ answered during the listing (${pings} pings)`);
    // Generous: a listing that blocked the event loop while merging stalled /v2/ for tens of seconds.
    assert.ok(slowest < 5_000, `/v2/ answered within 5 s during the listing (slowest ${slowest} ms)`);

    const again = await request(`${w.url}/v2/acme/big/tags/list?n=3`);
    assert.deepEqual(tagsOf(again.body), [tagName(0, 0), tagName(0, 1), tagName(0, 2)]);
    assert.equal(fake.requests.get('acme/big'), 5, 'no upstream request within the freshness window');
  });
});

describe('an upstream tag list past its freshness window', () => {
  let fake: FakeUpstream;
  let w: WharfProcess;
  before(async () => {
    fake = await startFakeUpstream();
    w = await startWharf({ config: { upstreams: [{ name: 'fake', url: fake.url, default: true, tagFreshness: '1s' }], limits: { maxUpstreamTagPages: 2 } } });
  });
  after(async () => {
    await w?.stop();
    await fake?.close();
  });

  it('is read again, and served from the last read while the upstream is down', async () => {
    const first = await request(`${w.url}/v2/acme/many/tags/list`);
    assert.equal(tagsOf(first.body).length, 200);
    assert.equal(fake.requests.get('acme/many'), 2);
    const past = Date.now() + 1100;
    while (Date.now() < past) await new Promise((r) => setTimeout(r, past - Date.now()));
    const second = await request(`${w.url}/v2/acme/many/tags/list`);
    assert.deepEqual(tagsOf(second.body), tagsOf(first.body));
    assert.equal(fake.requests.get('acme/many'), 4, 'read again once stale');

    fake.down = true;
    const again = Date.now() + 1100;
    while (Date.now() < again) await new Promise((r) => setTimeout(r, again - Date.now()));
    const stale = await request(`${w.url}/v2/acme/many/tags/list`);
    assert.equal(stale.status, 200, describeResponse(stale));
    assert.deepEqual(tagsOf(stale.body), tagsOf(first.body), 'the last list read, not an empty one');
    assert.ok((fake.requests.get('acme/many') ?? 0) > 4, 'the upstream was asked');
  });
});
