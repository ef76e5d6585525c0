/**
 * The cache dashboard's figures in /_wharf/api/stats, against a real wharf and a Distribution upstream: the
 * most pulled repositories over the hour and the day (a multi-platform pull counted once, HEADs not at all,
 * only what the viewer may pull, the same once the counts are written to the metadata store), a slow download
 * in flight with its progress and clients, upstream health (an unreachable upstream fails, a working one
 * does not) with rate-limit headroom, and the referrers of an image.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { basicHeader, request } from '../helpers/http.js';
import { BIG_RATE, SBOM_TYPE, getManifest, startDashboardFixture, stats, statsUntil, type DashboardFixture } from './dashboard-fixture.js';
import { ADMIN, READER } from './fixture.js';

let f: DashboardFixture;
before(async () => {
  f = await startDashboardFixture();
});
after(async () => {
  await f?.stop();
});

describe('cache dashboard API', () => {
  it('ranks repositories by pulls over the last hour and day, listing only those the viewer may pull', async () => {
    const base = f.wharf.url;
    for (let i = 0; i < 2; i++) assert.equal((await getManifest(base, 'library/alpine', '1', READER)).status, 200);
    assert.equal((await getManifest(base, 'library/busybox', '1', READER)).status, 200);
    // A HEAD checks a tag's digest: not a pull.
    const head = await request(`${base}/v2/library/busybox/manifests/1`, { method: 'HEAD', headers: { authorization: basicHeader(READER), accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(head.status, 200);
    assert.equal((await getManifest(base, 'secret/tool', '1', ADMIN)).status, 200);
    // A multi-platform pull: the index by tag, then one platform's manifest by digest. One pull.
    assert.equal((await getManifest(base, 'library/multi', '1', READER)).status, 200);
    assert.equal((await getManifest(base, 'library/multi', f.multi.images[0]!.manifestDigest, READER)).status, 200);

    const want = [
      { repository: 'library/alpine', pulls: 2 },
      { repository: 'library/busybox', pulls: 1 },
      { repository: 'library/multi', pulls: 1 },
    ];
    const asReader = await stats(base, READER);
    assert.deepEqual(asReader.topPulls.hour, want, 'the reader may not pull secret/tool: it is not listed');
    assert.deepEqual(asReader.topPulls.day, want);
    const asAdmin = await stats(base, ADMIN);
    assert.deepEqual(asAdmin.topPulls.hour, [...want, { repository: 'secret/tool', pulls: 1 }]);

    // The counts reach the metadata store in batches (every 5 s): once written they are neither lost nor doubled.
    await new Promise((r) => setTimeout(r, 6500));
    const later = await stats(base, READER);
    assert.deepEqual(later.topPulls.hour, want);
    assert.deepEqual(later.topPulls.day, want);

    const anonymous = await request(`${base}/_wharf/api/stats`);
    assert.equal(anonymous.status, 401, 'the figures need a login when auth is configured');
  });

  it('shows a slow download in flight with its progress and clients, and drops it once done', async () => {
    const base = f.wharf.url;
    const layer = f.big.layers[0]!;
    f.proxy.inject({ match: { method: 'GET', path: `/v2/library/big/blobs/${layer.digest}` }, action: { kind: 'pace', bytesPerSecond: BIG_RATE } });
    assert.equal((await getManifest(base, 'library/big', '1', READER)).status, 200);
    const blob = request(`${base}/v2/library/big/blobs/${layer.digest}`, { headers: { authorization: basicHeader(READER) } });
    const s = await statsUntil(
      base,
      READER,
      (x) => x.downloads.some((d) => d.digest === layer.digest && d.received > 0 && d.clients >= 1),
      'the paced download, started, with a client',
    );
    const d = s.downloads.find((x) => x.digest === layer.digest)!;
    assert.equal(d.repository, 'library/big');
    assert.equal(d.upstream, 'hub');
    assert.equal(d.size, layer.bytes.length);
    assert.ok(d.received < layer.bytes.length, `only part of it so far (${d.received} of ${layer.bytes.length})`);
    assert.ok(d.startedAt <= Date.now() && d.startedAt > Date.now() - 60_000);
    const later = await statsUntil(base, READER, (x) => (x.downloads.find((y) => y.digest === layer.digest)?.received ?? 0) > d.received, 'progress');
    assert.ok(later.downloads.length >= 1);

    const res = await blob;
    assert.equal(res.status, 200);
    assert.equal(res.body.length, layer.bytes.length);
    await statsUntil(base, READER, (x) => !x.downloads.some((y) => y.digest === layer.digest), 'the finished download gone from the list');
  });

  it("lists another's download only to a viewer who may pull its repository", async () => {
    const base = f.wharf.url;
    const layer = f.secret.layers[0]!;
    f.proxy.inject({ match: { method: 'GET', path: `/v2/secret/vault/blobs/${layer.digest}` }, action: { kind: 'pace', bytesPerSecond: 1000 } });
    assert.equal((await getManifest(base, 'secret/vault', '1', ADMIN)).status, 200);
    const blob = request(`${base}/v2/secret/vault/blobs/${layer.digest}`, { headers: { authorization: basicHeader(ADMIN) } });
    await statsUntil(base, ADMIN, (x) => x.downloads.some((d) => d.digest === layer.digest), 'the admin sees the secret download');
    const asReader = await stats(base, READER);
    assert.equal(asReader.downloads.some((d) => d.digest === layer.digest || d.repository === 'secret/vault'), false);
    assert.equal((await blob).status, 200);
  });

  it('reports each upstream: reachable with its rate limit, or unreachable with the last error', async () => {
    const base = f.wharf.url;
    f.proxy.inject({
      match: { path: /^\/v2\/library\/rated\/manifests\// },
      action: { kind: 'headers', headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '42;w=21600' } },
    });
    assert.equal((await getManifest(base, 'library/rated', '1', READER)).status, 200);
    const failed = await getManifest(base, 'dead.example/team/app', '1', READER);
    assert.ok(failed.status >= 500, `the unreachable upstream's image is not served (${failed.status})`);

    const s = await stats(base, READER);
    const hub = s.upstreams.find((u) => u.name === 'hub')!;
    const dead = s.upstreams.find((u) => u.name === 'dead')!;
    assert.equal(hub.health?.state, 'ok');
    assert.ok((hub.health?.lastSuccess ?? 0) > Date.now() - 60_000);
    assert.equal(hub.health?.failures, 0);
    assert.deepEqual({ limit: hub.rateLimit?.limit, remaining: hub.rateLimit?.remaining }, { limit: 100, remaining: 42 });
    assert.equal(dead.health?.state, 'failing');
    assert.equal(dead.health?.lastSuccess, undefined);
    assert.ok((dead.health?.failures ?? 0) >= 1);
    assert.match(dead.health?.lastError?.message ?? '', /upstream dead unreachable/);
  });

  it("lists an image's referrers (an SBOM pushed with it as subject)", async () => {
    const r = await request(`${f.wharf.url}/_wharf/api/image?name=apps/signed&ref=1.0`, { headers: { authorization: basicHeader(READER) } });
    assert.equal(r.status, 200, r.body.toString());
    const image = JSON.parse(r.body.toString('utf8')) as { referrers: Array<{ digest: string; artifactType?: string }> };
    assert.deepEqual(
      image.referrers.map((x) => ({ digest: x.digest, artifactType: x.artifactType })),
      [{ digest: f.sbom.digest, artifactType: SBOM_TYPE }],
    );
  });
});
