import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { basicHeader, manifestAccept, request } from '../helpers/http.js';
import { makeImage, pushImage, type TestImage } from '../helpers/oci-image.js';
import { startPrometheus, type PrometheusProcess } from '../helpers/prometheus.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

type VectorSample = { metric: Record<string, string>; value: [number, string] };

function asVector(x: unknown): VectorSample[] {
  assert.ok(Array.isArray(x), `not an instant vector: ${JSON.stringify(x)}`);
  return x as VectorSample[];
}

describe('a real Prometheus scraping a wharf process (shipped deploy/prometheus config)', () => {
  let upstream: RegistryProcess;
  let wharf: WharfProcess;
  let prom: PrometheusProcess;
  let img: TestImage;
  const REPO = 'promteam/app';

  before(async () => {
    upstream = await startRegistry();
    img = makeImage({ layers: 1 });
    await pushImage(upstream.url, REPO, 'v1', img);
    wharf = await startWharf({ config: { upstreams: [{ name: 'hub', url: upstream.url, default: true }] } });

    // The pull happens before Prometheus starts, so its very first scrape already holds the misses.
    const m = await request(`${wharf.url}/v2/${REPO}/manifests/v1`, { headers: { accept: manifestAccept } });
    assert.equal(m.status, 200, describeResponse(m));
    for (const b of [img.config, ...img.layers]) {
      const res = await request(`${wharf.url}/v2/${REPO}/blobs/${b.digest}`);
      assert.equal(res.status, 200, describeResponse(res));
    }

    prom = await startPrometheus({ scrapeTarget: wharf.host, scrapeInterval: '1s' });
  });
  after(async () => {
    await prom?.stop();
    await wharf?.stop();
    await upstream?.stop();
  });

  it('scrapes /metrics and answers queries for wharf_cache_requests_total with the pull in it', async () => {
    await prom.waitForScrape(20_000);

    const up = asVector(await prom.query('up{job="wharf"}'));
    assert.equal(up.length, 1, JSON.stringify(up));
    assert.equal(up[0]!.value[1], '1');

    const all = asVector(await prom.query('wharf_cache_requests_total'));
    assert.ok(all.length > 0, 'no wharf_cache_requests_total series');
    for (const s of all) {
      assert.equal(s.metric.job, 'wharf');
      assert.ok(['manifest', 'blob', 'tag'].includes(s.metric.kind ?? ''), JSON.stringify(s.metric));
      assert.ok(['hit', 'miss', 'coalesced', 'stale'].includes(s.metric.outcome ?? ''), JSON.stringify(s.metric));
    }
    const value = (kind: string, outcome: string): number => {
      const s = all.find((x) => x.metric.kind === kind && x.metric.outcome === outcome);
      assert.ok(s, `no series for kind=${kind},outcome=${outcome}: ${JSON.stringify(all.map((x) => x.metric))}`);
      return Number(s.value[1]);
    };
    assert.equal(value('tag', 'miss'), 1);
    // With layer prefetch (the default) a blob the client asks for may be a miss, on its way (coalesced) or already a hit.
    const blobAsks = all.filter((x) => x.metric.kind === 'blob').reduce((a, x) => a + Number(x.value[1]), 0);
    assert.equal(blobAsks, 1 + img.layers.length);
    const prefetched = asVector(await prom.query('sum(wharf_prefetch_blobs_total{upstream="hub",result=~"fetched|present"})'));
    assert.equal(Number(prefetched[0]?.value[1]), 1 + img.layers.length, JSON.stringify(prefetched));

    const bytes = asVector(await prom.query('sum(wharf_upstream_bytes_total{upstream="hub"})'));
    const blobBytes = [img.config, ...img.layers].reduce((a, b) => a + b.bytes.length, 0);
    assert.ok(Number(bytes[0]?.value[1]) >= blobBytes, JSON.stringify(bytes));
  });
});

describe('a locked-down wharf: /metrics on the main port only for the metrics.auth user', () => {
  const SCRAPER = 'scraper-token-0123456789abcdef0123';
  const CI = 'ci-token-0123456789abcdef0123456789';
  let wharf: WharfProcess;
  let prom: PrometheusProcess;
  let dir: TempDir;

  before(async () => {
    dir = await tempDir('wharf-scrape-');
    const tokenFile = join(dir.path, 'scrape-token');
    await writeFile(tokenFile, SCRAPER + '\n');
    wharf = await startWharf({
      config: {
        upstreams: [],
        auth: { anonymousPull: false, tokens: [{ user: 'prometheus', tokenFile }, { user: 'ci', token: CI }] },
        metrics: { auth: ['prometheus'] },
      },
    });
    prom = await startPrometheus({ scrapeTarget: wharf.host, scrapeInterval: '1s', authorization: { type: 'Bearer', credentials_file: tokenFile } });
  });
  after(async () => {
    await prom?.stop();
    await wharf?.stop();
    await dir?.cleanup();
  });

  it('refuses anonymous callers and other users, and lets the scraper in (Bearer or Basic)', async () => {
    const metrics = (authorization?: string) => request(`${wharf.url}/metrics`, { headers: authorization ? { authorization } : {} });
    const anonymous = await metrics();
    assert.equal(anonymous.status, 401, describeResponse(anonymous));
    assert.doesNotMatch(anonymous.body.toString('utf8'), /wharf_/);
    assert.equal((await metrics(`Bearer ${CI}`)).status, 401, 'a user not in metrics.auth');
    assert.equal((await metrics(basicHeader({ username: 'ci', password: CI }))).status, 401, 'a user not in metrics.auth, with Basic');
    assert.equal((await metrics(basicHeader({ username: 'prometheus', password: 'wrong' }))).status, 401, 'a wrong password');
    assert.equal((await metrics(`Bearer ${SCRAPER}`)).status, 200);
    assert.equal((await metrics(basicHeader({ username: 'prometheus', password: SCRAPER }))).status, 200);

    await prom.waitForScrape(20_000);
    const up = asVector(await prom.query('up{job="wharf"}'));
    assert.equal(up[0]?.value[1], '1', 'Prometheus scrapes with the token file of the shipped config example');
  });
});
