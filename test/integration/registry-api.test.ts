import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { makeImage, makeMultiPlatform, pushImage, sha256, type TestImage, type TestIndex } from '../helpers/oci-image.js';
import { storedBytes } from '../helpers/test-storage.js';
import { describeResponse, errorCodes, rawHead, startWharf, type WharfProcess } from '../helpers/wharf.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
const ACCEPT_ALL = [
  OCI_INDEX,
  OCI_MANIFEST,
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

let w: WharfProcess;
before(async () => {
  w = await startWharf();
});
after(() => w?.stop());

const get = (path: string, headers: Record<string, string> = {}): Promise<HttpResponse> =>
  request(`${w.url}${path}`, { headers: { accept: ACCEPT_ALL, ...headers } });
/** Over a bare socket, so a body sent with a HEAD answer would show up (Node's client hides it). */
const head = (path: string, headers: Record<string, string> = {}): Promise<HttpResponse> =>
  rawHead(w, path, { accept: ACCEPT_ALL, ...headers });
const del = (path: string): Promise<HttpResponse> => request(`${w.url}${path}`, { method: 'DELETE' });

async function putBlob(repo: string, bytes: Buffer): Promise<string> {
  // POST + PUT (what docker does), so these tests do not depend on monolithic POST (tested in uploads)
  const digest = sha256(bytes);
  const post = await request(`${w.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202, `POST upload: ${describeResponse(post)}`);
  const put = new URL(post.headers.location ?? '', `${w.url}/`);
  put.searchParams.set('digest', digest);
  const res = await request(put.toString(), {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: bytes,
  });
  assert.equal(res.status, 201, `PUT upload: ${describeResponse(res)}`);
  return digest;
}

async function putManifest(repo: string, ref: string, mediaType: string, bytes: Buffer): Promise<HttpResponse> {
  return request(`${w.url}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body: bytes,
  });
}

function assertError(res: HttpResponse, status: number, code: string): void {
  assert.equal(res.status, status, describeResponse(res));
  assert.ok(errorCodes(res).includes(code), `want ${code}: ${describeResponse(res)}`);
}

/** Parses `<url>; rel="next"`; undefined when the header is absent. */
function nextLink(res: HttpResponse): URL | undefined {
  const link = res.headers.link;
  if (link === undefined) return undefined;
  const m = /^<([^>]+)>;\s*rel="?next"?$/.exec(link.trim());
  assert.ok(m, `Link header shape: ${link}`);
  return new URL(m[1]!, `${w.url}/`);
}

describe('base', () => {
  it('GET /v2/ answers 200 with the API version header', async () => {
    const res = await request(`${w.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });
});

describe('manifests', () => {
  const cases: Array<{ name: string; repo: string; x: TestImage | TestIndex }> = [
    { name: 'OCI image manifest', repo: 'api/oci-image', x: makeImage({ format: 'oci' }) },
    { name: 'Docker schema2 manifest', repo: 'api/docker-image', x: makeImage({ format: 'docker' }) },
    { name: 'OCI image index', repo: 'api/oci-index', x: makeMultiPlatform({ format: 'oci' }) },
    { name: 'Docker manifest list', repo: 'api/docker-list', x: makeMultiPlatform({ format: 'docker' }) },
  ];
  for (const c of cases) {
    it(`${c.name}: GET/HEAD by tag and digest serve the stored bytes and headers`, async () => {
      await pushImage(w.url, c.repo, 'v1', c.x);
      const top = 'bytes' in c.x ? { bytes: c.x.bytes, digest: c.x.digest, mediaType: c.x.mediaType } : {
        bytes: c.x.manifest,
        digest: c.x.manifestDigest,
        mediaType: c.x.mediaType,
      };
      for (const ref of ['v1', top.digest]) {
        const g = await get(`/v2/${c.repo}/manifests/${ref}`);
        assert.equal(g.status, 200, describeResponse(g));
        assert.deepEqual(g.body, top.bytes, 'bytes served are the bytes pushed');
        assert.equal(g.headers['content-type'], top.mediaType);
        assert.equal(g.headers['docker-content-digest'], top.digest);
        assert.equal(g.headers['content-length'], String(top.bytes.length));

        const h = await head(`/v2/${c.repo}/manifests/${ref}`);
        assert.equal(h.status, 200, describeResponse(h));
        assert.equal(h.body.length, 0);
        assert.equal(h.headers['content-type'], top.mediaType);
        assert.equal(h.headers['docker-content-digest'], top.digest);
        assert.equal(h.headers['content-length'], String(top.bytes.length));
      }
      // The manifest itself is a content-addressed file too (DESIGN: manifest bytes are blobs).
      assert.deepEqual(await storedBytes(w.dataDir, top.digest), top.bytes);
    });
  }

  it('PUT answers 201 with Location and Docker-Content-Digest', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'api/put', 'seed', img); // blobs + a first tag
    const res = await putManifest('api/put', 'v2', img.mediaType, img.manifest);
    assert.equal(res.status, 201, describeResponse(res));
    assert.equal(res.headers['docker-content-digest'], img.manifestDigest);
    assert.ok(res.headers.location, 'Location');
    const loc = new URL(res.headers.location!, `${w.url}/`);
    const follow = await get(loc.pathname);
    assert.equal(follow.status, 200, `Location ${loc.pathname}: ${describeResponse(follow)}`);
    assert.deepEqual(follow.body, img.manifest);
  });

  it('stores manifests byte-for-byte, whitespace and key order included', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'api/bytes', 'seed', img);
    const parsed = JSON.parse(img.manifest.toString()) as Record<string, unknown>;
    const odd = Buffer.from(`\n{ "layers" : ${JSON.stringify(parsed.layers, null, 3)},\n"config":${JSON.stringify(parsed.config)},
      "mediaType": "${img.mediaType}", "schemaVersion":2 }\n\n`);
    const res = await putManifest('api/bytes', 'odd', img.mediaType, odd);
    assert.equal(res.status, 201, describeResponse(res));
    assert.equal(res.headers['docker-content-digest'], sha256(odd));
    const g = await get('/v2/api/bytes/manifests/odd');
    assert.deepEqual(g.body, odd);
    assert.equal(g.headers['docker-content-digest'], sha256(odd));
  });

  it('DELETE by digest removes the manifest; its tag no longer resolves', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'api/del', 'v1', img);
    const d = await del(`/v2/api/del/manifests/${img.manifestDigest}`);
    assert.equal(d.status, 202, describeResponse(d));
    assertError(await get(`/v2/api/del/manifests/${img.manifestDigest}`), 404, 'MANIFEST_UNKNOWN');
    assertError(await get('/v2/api/del/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
    const h = await head(`/v2/api/del/manifests/${img.manifestDigest}`);
    assert.equal(h.status, 404);
    assert.equal(h.body.length, 0, 'HEAD error responses have no body');
    assertError(await del(`/v2/api/del/manifests/${img.manifestDigest}`), 404, 'MANIFEST_UNKNOWN');
  });

  it('DELETE by tag removes only the tag; the digest still resolves', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'api/untag', 'v1', img);
    await pushImage(w.url, 'api/untag', 'keep', img);
    const d = await del('/v2/api/untag/manifests/v1');
    assert.equal(d.status, 202, describeResponse(d));
    assertError(await get('/v2/api/untag/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
    const byDigest = await get(`/v2/api/untag/manifests/${img.manifestDigest}`);
    assert.equal(byDigest.status, 200, describeResponse(byDigest));
    assert.deepEqual(byDigest.body, img.manifest);
    const tags = JSON.parse((await get('/v2/api/untag/tags/list')).body.toString()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['keep']);
  });

  it('rejects a manifest over the default 4 MiB limit with 413', async () => {
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'api/huge', 'seed', img);
    const parsed = JSON.parse(img.manifest.toString()) as Record<string, unknown>;
    parsed.annotations = { pad: 'x'.repeat(4 * 1024 * 1024) };
    const res = await putManifest('api/huge', 'big', img.mediaType, Buffer.from(JSON.stringify(parsed)));
    assert.equal(res.status, 413, describeResponse(res));
    const codes = errorCodes(res);
    assert.ok(codes.includes('MANIFEST_INVALID') || codes.includes('SIZE_INVALID'), describeResponse(res));
    assertError(await get('/v2/api/huge/manifests/big'), 404, 'MANIFEST_UNKNOWN');
  });
});

describe('blobs', () => {
  const bytes = randomBytes(1000);
  let digest: string;
  before(async () => {
    digest = await putBlob('api/blob', bytes);
  });

  it('GET and HEAD serve the bytes with digest and length', async () => {
    const g = await get(`/v2/api/blob/blobs/${digest}`);
    assert.equal(g.status, 200, describeResponse(g));
    assert.deepEqual(g.body, bytes);
    assert.equal(g.headers['docker-content-digest'], digest);
    assert.equal(g.headers['content-length'], '1000');
    const h = await head(`/v2/api/blob/blobs/${digest}`);
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);
    assert.equal(h.headers['content-length'], '1000');
    assert.equal(h.headers['docker-content-digest'], digest);
    assert.deepEqual(await storedBytes(w.dataDir, digest), bytes, 'content-addressed file');
  });

  it('Range requests answer 206 with Content-Range; unsatisfiable ones 416', async () => {
    const mid = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes=10-19' });
    assert.equal(mid.status, 206, describeResponse(mid));
    assert.equal(mid.headers['content-range'], 'bytes 10-19/1000');
    assert.equal(mid.headers['content-length'], '10');
    assert.deepEqual(mid.body, bytes.subarray(10, 20));

    const open = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes=990-' });
    assert.equal(open.status, 206);
    assert.equal(open.headers['content-range'], 'bytes 990-999/1000');
    assert.deepEqual(open.body, bytes.subarray(990));

    const suffix = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes=-5' });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.headers['content-range'], 'bytes 995-999/1000');
    assert.deepEqual(suffix.body, bytes.subarray(995));

    const past = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes=1000-' });
    assert.equal(past.status, 416, describeResponse(past));
    assert.equal(past.headers['content-range'], 'bytes */1000');
  });

  it('a multi-range request gets 206 multipart/byteranges as from Distribution; never 416 while satisfiable', async () => {
    const multi = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes=0-1,3-4, 998-' });
    assert.equal(multi.status, 206, describeResponse(multi));
    const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(multi.headers['content-type'] ?? '')?.[1];
    assert.ok(boundary, `content-type ${multi.headers['content-type']}`);
    assert.equal(multi.headers['content-length'], String(multi.body.length));
    const parts = multi.body.toString('latin1').split(`--${boundary}`);
    assert.equal(parts.at(-1), '--\r\n', 'closing delimiter');
    const got = parts.slice(1, -1).map((p) => {
      const part = p.replace(/^\r\n/, '');
      const cut = part.indexOf('\r\n\r\n');
      const [head, data] = [part.slice(0, cut), part.slice(cut + 4)];
      return { range: /Content-Range: (.*)/i.exec(head)?.[1], data: Buffer.from(data.replace(/\r\n$/, ''), 'latin1') };
    });
    assert.deepEqual(got, [
      { range: 'bytes 0-1/1000', data: bytes.subarray(0, 2) },
      { range: 'bytes 3-4/1000', data: bytes.subarray(3, 5) },
      { range: 'bytes 998-999/1000', data: bytes.subarray(998) },
    ]);

    const spaced = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes= 0-1' });
    assert.equal(spaced.status, 206, describeResponse(spaced));
    assert.equal(spaced.headers['content-range'], 'bytes 0-1/1000');
    assert.deepEqual(spaced.body, bytes.subarray(0, 2));

    const oneLeft = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes=5-6,2000-3000' });
    assert.equal(oneLeft.status, 206, 'an unsatisfiable range is dropped; one left is a plain 206');
    assert.equal(oneLeft.headers['content-range'], 'bytes 5-6/1000');
    assert.deepEqual(oneLeft.body, bytes.subarray(5, 7));

    for (const range of ['bytes=0-499,200-799', 'bytes=10-19,0-1', 'bytes=0-,0-']) {
      const whole = await get(`/v2/api/blob/blobs/${digest}`, { range });
      assert.equal(whole.status, 200, `${range}: overlapping or backwards ranges get the whole blob`);
      assert.deepEqual(whole.body, bytes);
    }
    const none = await get(`/v2/api/blob/blobs/${digest}`, { range: 'bytes=1000-1001,2000-' });
    assert.equal(none.status, 416, 'no satisfiable range');
    assert.equal(none.headers['content-range'], 'bytes */1000');
  });

  it('DELETE unlinks the blob from the repository', async () => {
    const other = randomBytes(300);
    const d = await putBlob('api/blobdel', other);
    const res = await del(`/v2/api/blobdel/blobs/${d}`);
    assert.equal(res.status, 202, describeResponse(res));
    assertError(await get(`/v2/api/blobdel/blobs/${d}`), 404, 'BLOB_UNKNOWN');
    const h = await head(`/v2/api/blobdel/blobs/${d}`);
    assert.equal(h.status, 404);
    assert.equal(h.body.length, 0);
  });
});

describe('tags and catalog', () => {
  const repo = 'api/paged';
  const tags = ['a1', 'b2', 'c3', 'd4', 'e5'];
  before(async () => {
    const img = makeImage({ layers: 1, layerSize: 64 });
    for (const t of [...tags].reverse()) await pushImage(w.url, repo, t, img);
  });

  it('tags/list returns every tag in lexical order', async () => {
    const res = await get(`/v2/${repo}/tags/list`);
    assert.equal(res.status, 200, describeResponse(res));
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(res.body.toString()), { name: repo, tags });
    assert.equal(res.headers.link, undefined, 'no Link when everything fits');
  });

  it('tags/list pages with n/last and a Link to the next page', async () => {
    const first = await get(`/v2/${repo}/tags/list?n=2`);
    assert.equal(first.status, 200, describeResponse(first));
    assert.deepEqual((JSON.parse(first.body.toString()) as { tags: string[] }).tags, ['a1', 'b2']);
    const link = nextLink(first);
    assert.ok(link, 'Link header on a partial page');
    assert.equal(link.pathname, `/v2/${repo}/tags/list`);
    assert.equal(link.searchParams.get('n'), '2');
    assert.equal(link.searchParams.get('last'), 'b2');

    const seen: string[] = [];
    let next: URL | undefined = new URL(`${w.url}/v2/${repo}/tags/list?n=2`);
    for (let i = 0; next !== undefined && i < 10; i++) {
      const page = await get(next.pathname + next.search);
      assert.equal(page.status, 200);
      const body = JSON.parse(page.body.toString()) as { tags: string[] };
      assert.ok(body.tags.length <= 2);
      seen.push(...body.tags);
      next = nextLink(page);
    }
    assert.deepEqual(seen, tags);

    const fromLast = await get(`/v2/${repo}/tags/list?last=c3`);
    assert.deepEqual((JSON.parse(fromLast.body.toString()) as { tags: string[] }).tags, ['d4', 'e5']);
  });

  it('_catalog lists repositories as pushed, paged the same way', async () => {
    for (const r of ['cat/zeta', 'cat/alpha/one', 'cat/mid']) {
      await pushImage(w.url, r, 'v1', makeImage({ layers: 1, layerSize: 64 }));
    }
    const full = await get('/v2/_catalog');
    assert.equal(full.status, 200, describeResponse(full));
    const all = (JSON.parse(full.body.toString()) as { repositories: string[] }).repositories;
    for (const r of ['cat/zeta', 'cat/alpha/one', 'cat/mid', repo]) assert.ok(all.includes(r), `${r} in ${all.join(',')}`);
    assert.deepEqual(all, [...all].sort(), 'lexical order');

    const first = await get('/v2/_catalog?n=2');
    const page1 = (JSON.parse(first.body.toString()) as { repositories: string[] }).repositories;
    assert.deepEqual(page1, all.slice(0, 2));
    const link = nextLink(first);
    assert.ok(link, 'Link header on a partial catalog page');
    assert.equal(link.pathname, '/v2/_catalog');
    assert.equal(link.searchParams.get('n'), '2');
    assert.equal(link.searchParams.get('last'), all[1]);

    const seen: string[] = [];
    let next: URL | undefined = new URL(`${w.url}/v2/_catalog?n=2`);
    for (let i = 0; next !== undefined && i < 100; i++) {
      const page = await get(next.pathname + next.search);
      seen.push(...(JSON.parse(page.body.toString()) as { repositories: string[] }).repositories);
      next = nextLink(page);
    }
    assert.deepEqual(seen, all);
  });
});

describe('referrers', () => {
  const repo = 'api/refs';
  const subject = makeImage({ layers: 1 });
  const typeA = 'application/vnd.example.sbom.v1';
  const typeB = 'application/vnd.example.signature.v1';
  const artifacts: Array<{ bytes: Buffer; digest: string; artifactType: string }> = [];

  async function pushArtifact(artifactType: string, annotations: Record<string, string>): Promise<HttpResponse> {
    const empty = await putBlob(repo, Buffer.from('{}'));
    const payload = await putBlob(repo, randomBytes(100));
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType,
        config: { mediaType: OCI_EMPTY, digest: empty, size: 2 },
        layers: [{ mediaType: 'application/octet-stream', digest: payload, size: 100 }],
        subject: { mediaType: subject.mediaType, digest: subject.manifestDigest, size: subject.manifest.length },
        annotations,
      }),
    );
    const digest = sha256(bytes);
    artifacts.push({ bytes, digest, artifactType });
    return putManifest(repo, digest, OCI_MANIFEST, bytes);
  }

  before(async () => {
    await pushImage(w.url, repo, 'v1', subject);
  });

  it('a PUT of a manifest with subject answers with OCI-Subject', async () => {
    const a = await pushArtifact(typeA, { 'org.example.kind': 'sbom' });
    assert.equal(a.status, 201, describeResponse(a));
    assert.equal(a.headers['oci-subject'], subject.manifestDigest);
    const b = await pushArtifact(typeB, { 'org.example.kind': 'sig' });
    assert.equal(b.status, 201, describeResponse(b));
    assert.equal(b.headers['oci-subject'], subject.manifestDigest);
  });

  it('lists both referrers as an OCI index, and filters by artifactType', async () => {
    assert.equal(artifacts.length, 2, 'previous test pushed the artifacts');
    const res = await get(`/v2/${repo}/referrers/${subject.manifestDigest}`);
    assert.equal(res.status, 200, describeResponse(res));
    assert.match(res.headers['content-type'] ?? '', /^application\/vnd\.oci\.image\.index\.v1\+json/);
    const index = JSON.parse(res.body.toString()) as {
      schemaVersion: number;
      mediaType: string;
      manifests: Array<{ mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }>;
    };
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, OCI_INDEX);
    const got = index.manifests.map((m) => m.digest).sort();
    assert.deepEqual(got, artifacts.map((a) => a.digest).sort());
    for (const a of artifacts) {
      const m = index.manifests.find((x) => x.digest === a.digest)!;
      assert.equal(m.mediaType, OCI_MANIFEST);
      assert.equal(m.size, a.bytes.length);
      assert.equal(m.artifactType, a.artifactType);
      assert.ok(m.annotations?.['org.example.kind'], 'descriptor carries the manifest annotations');
    }

    const filtered = await get(`/v2/${repo}/referrers/${subject.manifestDigest}?artifactType=${encodeURIComponent(typeA)}`);
    assert.equal(filtered.status, 200, describeResponse(filtered));
    assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
    const fi = JSON.parse(filtered.body.toString()) as { manifests: Array<{ digest: string; artifactType?: string }> };
    assert.deepEqual(fi.manifests.map((m) => m.digest), [artifacts[0]!.digest]);
    assert.equal(fi.manifests[0]!.artifactType, typeA);
  });

  it('takes artifactType from config.mediaType when the manifest has none', async () => {
    const cfgType = 'application/vnd.example.config.v1+json';
    const cfg = await putBlob(repo, Buffer.from('{"kind":"config"}'));
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: cfgType, digest: cfg, size: 17 },
        layers: [],
        subject: { mediaType: subject.mediaType, digest: subject.manifestDigest, size: subject.manifest.length },
      }),
    );
    const put = await putManifest(repo, sha256(bytes), OCI_MANIFEST, bytes);
    assert.equal(put.status, 201, describeResponse(put));
    const res = await get(`/v2/${repo}/referrers/${subject.manifestDigest}?artifactType=${encodeURIComponent(cfgType)}`);
    assert.equal(res.status, 200, describeResponse(res));
    const index = JSON.parse(res.body.toString()) as { manifests: Array<{ digest: string; artifactType?: string }> };
    assert.deepEqual(index.manifests, [
      { ...index.manifests[0], digest: sha256(bytes), artifactType: cfgType },
    ]);
  });

  it('answers an empty index (not 404) for a digest nothing refers to', async () => {
    const res = await get(`/v2/${repo}/referrers/${sha256('nothing refers to this')}`);
    assert.equal(res.status, 200, describeResponse(res));
    const index = JSON.parse(res.body.toString()) as { manifests: unknown[] };
    assert.deepEqual(index.manifests, []);
  });
});

describe('persistence', () => {
  it('manifests, blobs, tags, catalog and referrers survive a restart', async () => {
    const img = makeImage({ layers: 2 });
    await pushImage(w.url, 'api/persist', 'v1', img);
    const paths = [
      '/v2/api/persist/manifests/v1',
      `/v2/api/persist/manifests/${img.manifestDigest}`,
      `/v2/api/persist/blobs/${img.layers[1]!.digest}`,
      '/v2/api/persist/tags/list',
      '/v2/api/paged/tags/list',
      '/v2/_catalog',
    ];
    const refsPath = `/v2/api/refs/referrers/${(await get('/v2/api/refs/manifests/v1')).headers['docker-content-digest'] ?? ''}`;
    const before = await Promise.all([...paths, refsPath].map((p) => get(p)));
    await w.restart();
    assert.deepEqual(w.lastExit()?.forced, false, 'SIGTERM stopped wharf without SIGKILL');
    const after = await Promise.all([...paths, refsPath].map((p) => get(p)));
    for (let i = 0; i < before.length; i++) {
      assert.equal(after[i]!.status, before[i]!.status, `${[...paths, refsPath][i]}: ${describeResponse(after[i]!)}`);
      if (i === before.length - 1 && before[i]!.status === 200) {
        // referrer order is not specified: compare as sets
        const digests = (r: HttpResponse): string[] =>
          (JSON.parse(r.body.toString()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest).sort();
        assert.deepEqual(digests(after[i]!), digests(before[i]!));
      } else {
        assert.deepEqual(after[i]!.body, before[i]!.body, [...paths, refsPath][i]);
      }
    }
    assert.deepEqual(after[0]!.body, img.manifest);
  });
});
