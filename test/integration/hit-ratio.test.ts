import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hitRatio, trafficFrom, type TrafficFigures } from '../../src/cli/stats.js';
import { manifestAccept, request } from '../helpers/http.js';
import { blobsOf, makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { copy } from '../helpers/skopeo.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, waitIdle, type WharfProcess } from '../helpers/wharf.js';

/**
 * Issue 17 item 7: the hit ratio is "requests and bytes the upstream did not have to serve for this
 * client's pull". Layers that prefetch fetched for the pull being served, and a manifest fetched for the
 * HEAD that precedes its GET, are that pull's misses. Figures are read with the CLI's own trafficFrom /
 * hitRatio, the formula `wharf stats` shows.
 */
describe('hit ratio: a cold pull reads 0 %, a repeated pull 100 %', () => {
  let upstream: RegistryProcess;
  let wharf: WharfProcess;
  let tmp: TempDir;
  const images: Record<string, TestImage> = {};

  before(async () => {
    upstream = await startRegistry();
    tmp = await tempDir('wharf-hit-ratio-');
    for (const name of ['skopeo', 'docker']) {
      images[name] = makeImage({ layers: 4, layerSize: 200_000 });
      await pushImage(upstream.url, `team/${name}`, '1', images[name]!);
    }
    // Long freshness: the repeated pull is a pure cache answer, not a revalidation.
    wharf = await startWharf({ config: { upstreams: [{ name: 'up', url: upstream.url, default: true, tagFreshness: '1h' }] } });
  });
  after(async () => {
    await wharf?.stop();
    await upstream?.stop();
    await tmp?.cleanup();
  });

  async function traffic(): Promise<TrafficFigures> {
    const res = await request(`${wharf.url}/metrics`);
    assert.equal(res.status, 200, describeResponse(res));
    return trafficFrom(res.body.toString('utf8'));
  }
  function minus(b: TrafficFigures, a: TrafficFigures): TrafficFigures {
    return {
      hits: b.hits - a.hits,
      requests: b.requests - a.requests,
      bytesFromCache: b.bytesFromCache - a.bytesFromCache,
      bytesFromUpstream: b.bytesFromUpstream - a.bytesFromUpstream,
      bytesSpared: b.bytesSpared - a.bytesSpared,
    };
  }
  const blobBytes = (img: TestImage) => blobsOf(img).reduce((n, b) => n + b.bytes.length, 0);

  async function skopeoPull(n: number): Promise<void> {
    await copy(`docker://${wharf.host}/team/skopeo:1`, `oci:${tmp.path}/pull-${n}:x`);
  }
  /** As the Docker engine pulls: HEAD the tag, GET the manifest by digest, then config and layers. */
  async function dockerPull(img: TestImage): Promise<void> {
    const head = await request(`${wharf.url}/v2/team/docker/manifests/1`, { method: 'HEAD', headers: { accept: manifestAccept } });
    assert.equal(head.status, 200, describeResponse(head));
    assert.equal(head.headers['docker-content-digest'], img.manifestDigest);
    const m = await request(`${wharf.url}/v2/team/docker/manifests/${img.manifestDigest}`, { headers: { accept: manifestAccept } });
    assert.equal(m.status, 200, describeResponse(m));
    for (const b of blobsOf(img)) {
      const res = await request(`${wharf.url}/v2/team/docker/blobs/${b.digest}`);
      assert.equal(res.status, 200, describeResponse(res));
      assert.equal(sha256(res.body), b.digest);
    }
  }
  /** Counters move when the response has ended; wait until wharf has nothing in flight. */
  async function measure(pull: () => Promise<void>): Promise<TrafficFigures> {
    await waitIdle(wharf);
    const t0 = await traffic();
    await pull();
    await waitIdle(wharf);
    return minus(await traffic(), t0);
  }

  it('skopeo: after wharf purge, a cold pull (layers prefetched) is 0 % and spares no bytes; the repeat is 100 %', async () => {
    await skopeoPull(0);
    const purge = await request(`${wharf.url}/_wharf/admin/images?ref=team/skopeo:1`, { method: 'DELETE' });
    assert.equal(purge.status, 200, describeResponse(purge));

    const cold = await measure(() => skopeoPull(1));
    assert.ok(cold.requests >= 1 + blobsOf(images.skopeo!).length, `cold pull counted ${cold.requests} requests`);
    assert.equal(hitRatio(cold), 0, `cold pull: ${JSON.stringify(cold)}`);
    assert.equal(cold.bytesSpared, 0);
    assert.equal(cold.bytesFromCache, 0);
    assert.ok(cold.bytesFromUpstream >= blobBytes(images.skopeo!), `upstream bytes ${cold.bytesFromUpstream}`);

    const warm = await measure(() => skopeoPull(2));
    assert.equal(hitRatio(warm), 1, `repeated pull: ${JSON.stringify(warm)}`);
    assert.equal(warm.bytesFromUpstream, 0);
    assert.ok(warm.bytesSpared >= blobBytes(images.skopeo!), `spared ${warm.bytesSpared}`);
    assert.equal(warm.bytesSpared, warm.bytesFromCache);
  });

  it('Docker-style HEAD then GET by digest: cold 0 %, repeated 100 %', async () => {
    const img = images.docker!;
    const cold = await measure(() => dockerPull(img));
    assert.equal(cold.requests, 2 + blobsOf(img).length, `cold pull: ${JSON.stringify(cold)}`);
    assert.equal(hitRatio(cold), 0, `cold pull: ${JSON.stringify(cold)}`);
    assert.equal(cold.bytesSpared, 0);
    assert.equal(cold.bytesFromUpstream, blobBytes(img) + img.manifest.length);

    const warm = await measure(() => dockerPull(img));
    assert.equal(hitRatio(warm), 1, `repeated pull: ${JSON.stringify(warm)}`);
    assert.equal(warm.bytesSpared, blobBytes(img) + img.manifest.length);
  });
});
