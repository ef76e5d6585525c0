/**
 * Referrers (signatures, SBOMs) of mirrored images. Two real upstreams, each behind a counting fault proxy:
 * a second wharf (implements the OCI 1.1 referrers API) and Distribution 2.8 (no API: the tag schema
 * `sha256-<hex>` fallback). Also: legacy cosign tags (`sha256-<hex>.sig`) pass through as tags.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { request, type HttpResponse } from '../helpers/http.js';
import { sleep, startMirror } from '../helpers/mirror.js';
import { makeImage, pushImage, sha256, type TestImage, type TestIndex } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
const SIG = 'application/vnd.example.signature.v1';
const SBOM = 'application/vnd.example.sbom.v1';
const FRESH_S = 3;

let upWharf: WharfProcess;
let upProxy: FaultProxy;
let dist: RegistryProcess;
let distProxy: FaultProxy;
let w: WharfProcess;

/** An OCI artifact manifest whose `subject` is `subject` (what cosign / notation / SBOM tools push). */
function artifact(subject: TestImage, artifactType: string, note: string): TestImage {
  const empty = Buffer.from('{}');
  const payload = Buffer.from(`payload ${note}`);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: OCI_EMPTY, digest: sha256(empty), size: empty.length },
      layers: [{ mediaType: 'application/octet-stream', digest: sha256(payload), size: payload.length }],
      subject: { mediaType: subject.mediaType, digest: subject.manifestDigest, size: subject.manifest.length },
      annotations: { 'org.example.note': note },
    }),
  );
  return {
    manifest,
    manifestDigest: sha256(manifest),
    mediaType: OCI_MANIFEST,
    config: { digest: sha256(empty), bytes: empty, mediaType: OCI_EMPTY },
    layers: [{ digest: sha256(payload), bytes: payload, mediaType: 'application/octet-stream' }],
    platform: { os: 'linux', architecture: 'amd64' },
    diffIds: [],
  };
}

/** The referrers tag schema's index: what clients push to `sha256-<hex>` on a registry without the API. */
function tagSchemaIndex(refs: TestImage[]): TestIndex {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: refs.map((r) => {
        const m = JSON.parse(r.manifest.toString()) as { artifactType: string; annotations: Record<string, string> };
        return { mediaType: OCI_MANIFEST, digest: r.manifestDigest, size: r.manifest.length, artifactType: m.artifactType, annotations: m.annotations };
      }),
    }),
  );
  return { bytes, digest: sha256(bytes), mediaType: OCI_INDEX, images: refs };
}

interface Index {
  mediaType: string;
  manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }>;
}

async function referrers(repo: string, subject: string, query = ''): Promise<{ res: HttpResponse; index: Index }> {
  const res = await request(`${w.url}/v2/${repo}/referrers/${subject}${query}`);
  assert.equal(res.status, 200, describeResponse(res));
  assert.equal(res.headers['content-type'], OCI_INDEX);
  return { res, index: JSON.parse(res.body.toString()) as Index };
}

const digests = (i: Index): string[] => i.manifests.map((m) => m.digest);
const sorted = (xs: string[]): string[] => [...xs].sort();

async function metric(name: string, labels: string): Promise<number> {
  const text = (await request(`${w.url}/metrics`)).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

before(async () => {
  upWharf = await startWharf({ config: { upstreams: [] } });
  upProxy = await startFaultProxy(upWharf.url);
  dist = await startRegistry();
  distProxy = await startFaultProxy(dist.url);
  w = await startMirror(
    [
      { name: 'wup', url: upProxy.url, default: true, aliases: ['wup.test'], tagFreshness: `${FRESH_S}s`, notFoundTtl: '1s' },
      { name: 'dist', url: distProxy.url, aliases: ['dist.test'], tagFreshness: `${FRESH_S}s`, notFoundTtl: '1s' },
    ],
    { push: { overlay: ['acme/*'] } },
  );
});
after(async () => {
  await w?.stop();
  await upProxy?.stop();
  await upWharf?.stop();
  await distProxy?.stop();
  await dist?.stop();
});

describe('referrers through the mirror: an upstream with the referrers API (a second wharf)', () => {
  const repo = 'acme/tool';
  const mirrored = `wup.test/${repo}`;
  const subject = makeImage({ layers: 1 });
  const sig = artifact(subject, SIG, 'sig');
  const sbom = artifact(subject, SBOM, 'sbom');
  const later = artifact(subject, SIG, 'added later');

  before(async () => {
    await pushImage(upWharf.url, repo, 'v1', subject);
    await pushImage(upWharf.url, repo, sig.manifestDigest, sig);
    await pushImage(upWharf.url, repo, sbom.manifestDigest, sbom);
  });

  it('lists the upstream referrers with artifactType and annotations, and filters by artifactType', async () => {
    upProxy.reset();
    const { index } = await referrers(mirrored, subject.manifestDigest);
    assert.deepEqual(digests(index), sorted([sig.manifestDigest, sbom.manifestDigest]));
    const s = index.manifests.find((m) => m.digest === sig.manifestDigest);
    assert.equal(s?.artifactType, SIG);
    assert.deepEqual(s?.annotations, { 'org.example.note': 'sig' });
    const filtered = await referrers(mirrored, subject.manifestDigest, `?artifactType=${encodeURIComponent(SBOM)}`);
    assert.deepEqual(digests(filtered.index), [sbom.manifestDigest]);
    assert.equal(filtered.res.headers['oci-filters-applied'], 'artifactType');
    assert.equal(upProxy.count({ method: 'GET', path: `/v2/${repo}/referrers/${subject.manifestDigest}` }), 1, 'the second answer came from the cache');
    assert.ok((await metric('wharf_referrers_requests_total', 'outcome="hit"')) >= 1);
    assert.ok((await metric('wharf_referrers_requests_total', 'outcome="miss"')) >= 1);
  });

  it('referrer manifests and their blobs are pulled through wharf like any content', async () => {
    const m = await request(`${w.url}/v2/${mirrored}/manifests/${sig.manifestDigest}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(m.status, 200, describeResponse(m));
    assert.deepEqual(m.body, sig.manifest);
    const blob = await request(`${w.url}/v2/${mirrored}/blobs/${sig.layers[0]!.digest}`);
    assert.equal(blob.status, 200, describeResponse(blob));
    assert.deepEqual(blob.body, sig.layers[0]!.bytes);
    const again = upProxy.count({ method: 'GET', path: `/v2/${repo}/manifests/${sig.manifestDigest}` });
    assert.equal((await request(`${w.url}/v2/${mirrored}/manifests/${sig.manifestDigest}`, { headers: { accept: OCI_MANIFEST } })).status, 200);
    assert.equal(upProxy.count({ method: 'GET', path: `/v2/${repo}/manifests/${sig.manifestDigest}` }), again, 'served from the cache');
  });

  it('a signature added upstream after the image was cached shows up once the freshness window has passed', async () => {
    await pushImage(upWharf.url, repo, later.manifestDigest, later);
    const deadline = Date.now() + (FRESH_S + 15) * 1000;
    let seen: string[] = [];
    while (Date.now() < deadline) {
      seen = digests((await referrers(mirrored, subject.manifestDigest)).index);
      if (seen.includes(later.manifestDigest)) break;
      await sleep(250);
    }
    assert.deepEqual(seen, sorted([sig.manifestDigest, sbom.manifestDigest, later.manifestDigest]));
  });

  it('local referrers (pushed into an overlay repository) are merged with the upstream ones', async () => {
    const local = artifact(subject, SBOM, 'local');
    await pushImage(w.url, mirrored, local.manifestDigest, local);
    const { index } = await referrers(mirrored, subject.manifestDigest);
    assert.deepEqual(digests(index), sorted([sig.manifestDigest, sbom.manifestDigest, later.manifestDigest, local.manifestDigest]));
    assert.equal(index.manifests.find((m) => m.digest === local.manifestDigest)?.artifactType, SBOM);
  });

  it('the last answer is served while the upstream is down', async () => {
    const before = (await referrers(mirrored, subject.manifestDigest)).index;
    upProxy.inject({ match: { path: /\/referrers\// }, action: { kind: 'status', status: 503 } });
    try {
      const stale0 = await metric('wharf_referrers_requests_total', 'outcome="stale"');
      const deadline = Date.now() + (FRESH_S + 15) * 1000;
      while (Date.now() < deadline && (await metric('wharf_referrers_requests_total', 'outcome="stale"')) === stale0) {
        assert.deepEqual((await referrers(mirrored, subject.manifestDigest)).index, before);
        await sleep(250);
      }
      assert.ok((await metric('wharf_referrers_requests_total', 'outcome="stale"')) > stale0, 'the outage was seen');
      assert.deepEqual((await referrers(mirrored, subject.manifestDigest)).index, before);
    } finally {
      upProxy.clearFaults();
    }
  });
});

describe('referrers through the mirror: Distribution 2.8 (no API: the tag schema)', () => {
  const repo = 'acme/signed';
  const mirrored = `dist.test/${repo}`;
  const subject = makeImage({ layers: 1 });
  const unsigned = makeImage({ layers: 1 });
  const sig = artifact(subject, SIG, 'cosign-like');

  before(async () => {
    await pushImage(dist.url, repo, 'v1', subject);
    await pushImage(dist.url, repo, 'v2', unsigned);
    await pushImage(dist.url, repo, `sha256-${subject.manifestDigest.slice('sha256:'.length)}`, tagSchemaIndex([sig]));
  });

  it('an upstream 404 to the referrers API falls back to the sha256-<hex> tag, served as a referrers index', async () => {
    distProxy.reset();
    const { index } = await referrers(mirrored, subject.manifestDigest);
    assert.deepEqual(digests(index), [sig.manifestDigest]);
    assert.equal(index.manifests[0]?.artifactType, SIG);
    assert.equal(distProxy.count({ method: 'GET', path: `/v2/${repo}/referrers/${subject.manifestDigest}` }), 1);
    assert.equal(distProxy.requests.find((r) => r.path.includes('/referrers/'))?.status, 404, 'Distribution 2.8 has no referrers API');
    const m = await request(`${w.url}/v2/${mirrored}/manifests/${sig.manifestDigest}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(m.status, 200, describeResponse(m));
    assert.deepEqual(m.body, sig.manifest);
  });

  it('an image nobody signed gets an empty index (200, never 404)', async () => {
    const { index } = await referrers(mirrored, unsigned.manifestDigest);
    assert.deepEqual(index.manifests, []);
  });

  it('legacy cosign tags (sha256-<hex>.sig) pass through as tags', async () => {
    const tag = `sha256-${unsigned.manifestDigest.slice('sha256:'.length)}.sig`;
    const legacy = artifact(unsigned, 'application/vnd.dev.cosign.simplesigning.v1+json', 'legacy');
    await pushImage(dist.url, repo, tag, legacy);
    const m = await request(`${w.url}/v2/${mirrored}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(m.status, 200, describeResponse(m));
    assert.deepEqual(m.body, legacy.manifest);
    const tags = JSON.parse((await request(`${w.url}/v2/${mirrored}/tags/list`)).body.toString()) as { tags: string[] };
    assert.ok(tags.tags.includes(tag), JSON.stringify(tags));
  });
});
