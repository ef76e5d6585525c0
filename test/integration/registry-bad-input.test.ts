import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { makeImage, makeIndex, pushImage, sha256 } from '../helpers/oci-image.js';
import {
  describeResponse,
  errorCodes,
  filesUnder,
  rawHead,
  rawRequest,
  startWharf,
  type WharfProcess,
} from '../helpers/wharf.js';

/** Small limits so "too large" costs kilobytes, not gigabytes. */
const MAX_MANIFEST = 16 * 1024;
const MAX_BLOB = 64 * 1024;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

let w: WharfProcess;
const repo = 'bad/app';
const known = makeImage({ layers: 2 });
/** A blob that only `bad/other` holds. */
const otherOnly = randomBytes(333);
const otherOnlyDigest = sha256(otherOnly);

before(async () => {
  w = await startWharf({ config: { upstreams: [], limits: { maxManifestBytes: MAX_MANIFEST, maxBlobBytes: MAX_BLOB } } });
  await pushImage(w.url, repo, 'v1', known);
  const res = await request(`${w.url}${withQuery(await session('bad/other'), `digest=${otherOnlyDigest}`)}`, {
    method: 'PUT',
    body: otherOnly,
  });
  assert.equal(res.status, 201, describeResponse(res));
});
after(() => w?.stop());

interface Snapshot {
  files: string[];
  catalog: string;
  tags: string;
  manifest: string;
  layer: string;
}

async function snapshot(): Promise<Snapshot> {
  const text = async (path: string): Promise<string> => {
    const r = await request(`${w.url}${path}`, { headers: { accept: OCI_MANIFEST } });
    return `${r.status} ${sha256(r.body)} ${r.body.length}`;
  };
  return {
    files: await filesUnder(join(w.dataDir, 'blobs')),
    catalog: (await request(`${w.url}/v2/_catalog`)).body.toString(),
    tags: (await request(`${w.url}/v2/${repo}/tags/list`)).body.toString(),
    manifest: await text(`/v2/${repo}/manifests/v1`),
    layer: await text(`/v2/${repo}/blobs/${known.layers[0]!.digest}`),
  };
}

/** Opens an upload session in `name` (optionally with some bytes) and returns its raw path + query. */
async function session(name: string, bytes?: Buffer): Promise<string> {
  const post = await request(`${w.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202, describeResponse(post));
  let loc = new URL(post.headers.location!, `${w.url}/`);
  if (bytes !== undefined) {
    const p = await request(loc.toString(), {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${bytes.length - 1}` },
      body: bytes,
    });
    assert.equal(p.status, 202, describeResponse(p));
    loc = new URL(p.headers.location ?? loc.toString(), `${w.url}/`);
  }
  return loc.pathname + loc.search;
}

/** Appends query parameters to a raw path that may already have some. */
function withQuery(path: string, q: string): string {
  return path + (path.includes('?') ? '&' : '?') + q;
}

function ociManifest(extra: Record<string, unknown> = {}, layers?: unknown[]): Buffer {
  const m = JSON.parse(known.manifest.toString()) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ ...m, ...(layers ? { layers } : {}), ...extra }));
}

interface Row {
  name: string;
  method: string;
  /** Raw request target, or a function that prepares state (e.g. a session) and returns it. */
  path: string | (() => Promise<string>);
  headers?: Record<string, string>;
  body?: Buffer;
  status: number | number[];
  codes: string[];
  /** Extra checks after the request (nothing visible that must not be). */
  check?: () => Promise<void>;
}

const big = (n: number): Buffer => Buffer.alloc(n, 0x61);
const name256 = 'a'.repeat(256);
const name255 = 'a'.repeat(255);
const tag129 = 't'.repeat(129);
const badContent = randomBytes(200);
const wrongDigest = sha256('not the content');
const missingDigest = sha256('a blob nobody uploaded');
const oversizeBlob = randomBytes(MAX_BLOB + 1024);
const tooBigManifest = ociManifest({ annotations: { pad: 'x'.repeat(MAX_MANIFEST) } });

async function notVisible(name: string, digest: string): Promise<void> {
  const r = await request(`${w.url}/v2/${name}/blobs/${digest}`, { method: 'HEAD' });
  assert.equal(r.status, 404, `${name}@${digest} must not be visible: ${describeResponse(r)}`);
}

const rows: Row[] = [
  // ---- repository names (checked on the raw path) ----
  { name: 'upper-case name', method: 'GET', path: '/v2/Bad/App/tags/list', status: 400, codes: ['NAME_INVALID'] },
  { name: 'name ending in a separator', method: 'GET', path: '/v2/bad/app-/manifests/v1', status: 400, codes: ['NAME_INVALID'] },
  { name: 'double period in a component', method: 'GET', path: '/v2/bad/a..b/manifests/v1', status: 400, codes: ['NAME_INVALID'] },
  { name: '256-character name', method: 'GET', path: `/v2/${name256}/manifests/v1`, status: 400, codes: ['NAME_INVALID'] },
  { name: '255-character name is valid (unknown repo)', method: 'GET', path: `/v2/${name255}/tags/list`, status: 404, codes: ['NAME_UNKNOWN'] },
  {
    name: 'PUT manifest under an invalid name',
    method: 'PUT',
    path: '/v2/bad/APP/manifests/v1',
    headers: { 'content-type': OCI_MANIFEST },
    body: known.manifest,
    status: 400,
    codes: ['NAME_INVALID'],
  },
  { name: 'POST upload under an invalid name', method: 'POST', path: '/v2/bad/_app/blobs/uploads/', status: 400, codes: ['NAME_INVALID'] },
  // ---- path tricks ----
  { name: '.. segment resolving to the real repo', method: 'GET', path: '/v2/bad/x/../app/manifests/v1', status: 400, codes: ['NAME_INVALID'] },
  { name: '%2e%2e segment', method: 'GET', path: '/v2/bad/x/%2e%2e/app/manifests/v1', status: 400, codes: ['NAME_INVALID'] },
  { name: '%2f inside a name', method: 'GET', path: '/v2/bad%2fapp/manifests/v1', status: 400, codes: ['NAME_INVALID'] },
  { name: 'empty component (//)', method: 'GET', path: '/v2/bad//app/manifests/v1', status: 400, codes: ['NAME_INVALID'] },
  { name: 'leading slash in a name', method: 'GET', path: '/v2//bad/app/manifests/v1', status: 400, codes: ['NAME_INVALID'] },
  {
    name: '%2e%2e%2f in a blob digest',
    method: 'GET',
    path: '/v2/bad/app/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd',
    status: 400,
    codes: ['DIGEST_INVALID'],
  },
  {
    name: '..%2f in an upload id',
    method: 'PATCH',
    path: '/v2/bad/app/blobs/uploads/..%2f..%2fblobs',
    body: Buffer.from('x'),
    status: 404,
    codes: ['BLOB_UPLOAD_UNKNOWN'],
  },
  // ---- tags ----
  {
    name: 'tag starting with a dash',
    method: 'PUT',
    path: `/v2/${repo}/manifests/-v1`,
    headers: { 'content-type': OCI_MANIFEST },
    body: known.manifest,
    status: 400,
    codes: ['TAG_INVALID'],
  },
  {
    name: '129-character tag',
    method: 'PUT',
    path: `/v2/${repo}/manifests/${tag129}`,
    headers: { 'content-type': OCI_MANIFEST },
    body: known.manifest,
    status: 400,
    codes: ['TAG_INVALID'],
  },
  // spec.md, pulling manifests: "If the manifest is not found in the repository, the response code MUST be 404 Not Found."
  { name: 'percent-encoded tag (GET: no such manifest)', method: 'GET', path: `/v2/${repo}/manifests/v%2e1`, status: 404, codes: ['MANIFEST_UNKNOWN'] },
  { name: '128-character tag is valid (unknown)', method: 'GET', path: `/v2/${repo}/manifests/${'t'.repeat(128)}`, status: 404, codes: ['MANIFEST_UNKNOWN'] },
  // ---- digests ----
  { name: 'short sha256 digest', method: 'GET', path: `/v2/${repo}/blobs/sha256:abc`, status: 400, codes: ['DIGEST_INVALID'] },
  {
    name: 'upper-case hex',
    method: 'GET',
    path: `/v2/${repo}/blobs/${known.layers[0]!.digest.toUpperCase().replace('SHA256', 'sha256')}`,
    status: 400,
    codes: ['DIGEST_INVALID'],
  },
  { name: 'unknown algorithm', method: 'GET', path: `/v2/${repo}/blobs/md5:${'0'.repeat(32)}`, status: 400, codes: ['DIGEST_INVALID'] },
  { name: 'manifest by malformed digest (no such manifest)', method: 'GET', path: `/v2/${repo}/manifests/sha256:zz`, status: 404, codes: ['MANIFEST_UNKNOWN'] },
  { name: 'referrers of a malformed digest', method: 'GET', path: `/v2/${repo}/referrers/sha256:nope`, status: 400, codes: ['DIGEST_INVALID'] },
  // ---- uploads ----
  {
    name: 'PUT ?digest= that does not match the bytes',
    method: 'PUT',
    path: async () => withQuery(await session(repo, badContent), `digest=${wrongDigest}`),
    status: 400,
    codes: ['DIGEST_INVALID'],
    check: async () => {
      await notVisible(repo, wrongDigest);
      await notVisible(repo, sha256(badContent));
    },
  },
  {
    name: 'monolithic POST with a wrong digest',
    method: 'POST',
    path: `/v2/${repo}/blobs/uploads/?digest=${wrongDigest}`,
    body: badContent,
    status: 400,
    codes: ['DIGEST_INVALID'],
    check: () => notVisible(repo, sha256(badContent)),
  },
  {
    name: 'PUT ?digest= with a malformed digest',
    method: 'PUT',
    path: async () => withQuery(await session(repo, badContent), 'digest=sha256:1234'),
    status: 400,
    codes: ['DIGEST_INVALID'],
  },
  {
    name: 'PUT without ?digest=',
    method: 'PUT',
    path: () => session(repo, badContent),
    status: 400,
    codes: ['DIGEST_INVALID'],
    check: () => notVisible(repo, sha256(badContent)),
  },
  {
    name: 'PATCH whose Content-Range disagrees with the body size',
    method: 'PATCH',
    path: () => session(repo),
    headers: { 'content-type': 'application/octet-stream', 'content-range': '0-99' },
    body: randomBytes(50),
    status: [400, 416],
    codes: ['SIZE_INVALID', 'RANGE_INVALID'],
  },
  {
    name: 'PATCH with a garbage Content-Range',
    method: 'PATCH',
    path: () => session(repo),
    headers: { 'content-type': 'application/octet-stream', 'content-range': 'bytes=zero-ten' },
    body: randomBytes(11),
    status: 416,
    codes: ['RANGE_INVALID'],
  },
  {
    name: 'PATCH starting past the end of the upload',
    method: 'PATCH',
    path: () => session(repo, randomBytes(10)),
    headers: { 'content-type': 'application/octet-stream', 'content-range': '20-29' },
    body: randomBytes(10),
    status: 416,
    codes: ['RANGE_INVALID'],
  },
  { name: 'PATCH of an unknown upload id', method: 'PATCH', path: `/v2/${repo}/blobs/uploads/nosuchupload`, body: Buffer.from('x'), status: 404, codes: ['BLOB_UPLOAD_UNKNOWN'] },
  { name: 'GET status of an unknown upload id', method: 'GET', path: `/v2/${repo}/blobs/uploads/nosuchupload`, status: 404, codes: ['BLOB_UPLOAD_UNKNOWN'] },
  {
    name: 'PUT to an unknown upload id',
    method: 'PUT',
    path: `/v2/${repo}/blobs/uploads/nosuchupload?digest=${sha256(badContent)}`,
    body: badContent,
    status: 404,
    codes: ['BLOB_UPLOAD_UNKNOWN'],
    check: () => notVisible(repo, sha256(badContent)),
  },
  { name: 'DELETE of an unknown upload id', method: 'DELETE', path: `/v2/${repo}/blobs/uploads/nosuchupload`, status: 404, codes: ['BLOB_UPLOAD_UNKNOWN'] },
  {
    name: "another repository's upload id",
    method: 'PATCH',
    path: async () => (await session(repo)).replace(`/v2/${repo}/`, '/v2/bad/other/'),
    body: Buffer.from('hijack'),
    status: 404,
    codes: ['BLOB_UPLOAD_UNKNOWN'],
  },
  {
    name: 'monolithic blob over limits.maxBlobBytes',
    method: 'POST',
    path: `/v2/${repo}/blobs/uploads/?digest=${sha256(oversizeBlob)}`,
    body: oversizeBlob,
    status: [413, 400],
    codes: ['SIZE_INVALID', 'BLOB_UPLOAD_INVALID'],
    check: () => notVisible(repo, sha256(oversizeBlob)),
  },
  {
    name: 'chunked upload growing past limits.maxBlobBytes',
    method: 'PATCH',
    path: () => session(repo, oversizeBlob.subarray(0, MAX_BLOB - 100)),
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${MAX_BLOB - 100}-${oversizeBlob.length - 1}` },
    body: oversizeBlob.subarray(MAX_BLOB - 100),
    status: [413, 400],
    codes: ['SIZE_INVALID', 'BLOB_UPLOAD_INVALID'],
  },
  // ---- manifests ----
  {
    name: 'manifest that is not JSON',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_MANIFEST },
    body: Buffer.from('{"schemaVersion":2,'),
    status: 400,
    codes: ['MANIFEST_INVALID'],
  },
  {
    name: 'manifest with schemaVersion 1',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_MANIFEST },
    body: ociManifest({ schemaVersion: 1 }),
    status: 400,
    codes: ['MANIFEST_INVALID'],
  },
  {
    name: 'image manifest without config',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_MANIFEST },
    body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] })),
    status: 400,
    codes: ['MANIFEST_INVALID'],
  },
  {
    name: 'layer descriptor with a malformed digest',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_MANIFEST },
    body: ociManifest({}, [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:../../x', size: 1 }]),
    status: 400,
    codes: ['MANIFEST_INVALID', 'DIGEST_INVALID'],
  },
  {
    name: 'manifest referencing a missing layer',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_MANIFEST },
    body: ociManifest({}, [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: missingDigest, size: 10 }]),
    status: 400,
    codes: ['MANIFEST_BLOB_UNKNOWN'],
  },
  {
    name: 'manifest referencing a layer only another repository holds',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_MANIFEST },
    body: ociManifest({}, [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: otherOnlyDigest, size: otherOnly.length }]),
    status: 400,
    codes: ['MANIFEST_BLOB_UNKNOWN'],
  },
  {
    name: 'manifest referencing a missing config',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_MANIFEST },
    body: ociManifest({ config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: missingDigest, size: 10 } }),
    status: 400,
    codes: ['MANIFEST_BLOB_UNKNOWN'],
  },
  {
    name: 'index referencing a missing child manifest',
    method: 'PUT',
    path: `/v2/${repo}/manifests/broken`,
    headers: { 'content-type': OCI_INDEX },
    body: makeIndex([makeImage({ layers: 1, layerSize: 16 })]).bytes,
    status: 400,
    codes: ['MANIFEST_BLOB_UNKNOWN'],
  },
  {
    name: 'PUT by a digest that does not match the body',
    method: 'PUT',
    path: `/v2/${repo}/manifests/${wrongDigest}`,
    headers: { 'content-type': OCI_MANIFEST },
    body: known.manifest,
    status: 400,
    codes: ['DIGEST_INVALID'],
  },
  {
    name: 'manifest over limits.maxManifestBytes',
    method: 'PUT',
    path: `/v2/${repo}/manifests/huge`,
    headers: { 'content-type': OCI_MANIFEST },
    body: tooBigManifest,
    status: 413,
    codes: ['MANIFEST_INVALID', 'SIZE_INVALID'],
  },
  {
    name: 'retagging v1 with an invalid manifest leaves v1 alone',
    method: 'PUT',
    path: `/v2/${repo}/manifests/v1`,
    headers: { 'content-type': OCI_MANIFEST },
    body: big(100),
    status: 400,
    codes: ['MANIFEST_INVALID'],
  },
  // ---- unknown things ----
  { name: 'unknown tag', method: 'GET', path: `/v2/${repo}/manifests/nope`, status: 404, codes: ['MANIFEST_UNKNOWN'] },
  { name: 'HEAD unknown tag (no body)', method: 'HEAD', path: `/v2/${repo}/manifests/nope`, status: 404, codes: [] },
  { name: 'unknown blob', method: 'GET', path: `/v2/${repo}/blobs/${missingDigest}`, status: 404, codes: ['BLOB_UNKNOWN'] },
  { name: 'HEAD unknown blob (no body)', method: 'HEAD', path: `/v2/${repo}/blobs/${missingDigest}`, status: 404, codes: [] },
  { name: 'HEAD with an invalid name (no body)', method: 'HEAD', path: '/v2/bad/APP/manifests/v1', status: 400, codes: [] },
  { name: 'HEAD blob by a malformed digest (no body)', method: 'HEAD', path: `/v2/${repo}/blobs/sha256:abc`, status: 400, codes: [] },
  { name: 'blob of another repository', method: 'GET', path: `/v2/${repo}/blobs/${otherOnlyDigest}`, status: 404, codes: ['BLOB_UNKNOWN'] },
  { name: 'tags of an unknown repository', method: 'GET', path: '/v2/bad/nobody/tags/list', status: 404, codes: ['NAME_UNKNOWN'] },
  { name: 'DELETE unknown manifest', method: 'DELETE', path: `/v2/${repo}/manifests/${missingDigest}`, status: 404, codes: ['MANIFEST_UNKNOWN'] },
  // ---- ranges and paging ----
  { name: 'blob Range past the end', method: 'GET', path: `/v2/${repo}/blobs/${known.layers[0]!.digest}`, headers: { range: 'bytes=999999-' }, status: 416, codes: [] },
  { name: 'tags/list n=-1', method: 'GET', path: `/v2/${repo}/tags/list?n=-1`, status: 400, codes: ['PAGINATION_NUMBER_INVALID'] },
  { name: 'tags/list n=abc', method: 'GET', path: `/v2/${repo}/tags/list?n=abc`, status: 400, codes: ['PAGINATION_NUMBER_INVALID'] },
  { name: '_catalog n=1.5', method: 'GET', path: '/v2/_catalog?n=1.5', status: 400, codes: ['PAGINATION_NUMBER_INVALID'] },
];

describe('bad input gets the right OCI error and changes nothing', () => {
  for (const row of rows) {
    it(`${row.method} ${row.name}`, async () => {
      const path = typeof row.path === 'string' ? row.path : await row.path();
      const before = await snapshot();
      const res =
        row.method === 'HEAD'
          ? await rawHead(w, path, row.headers ?? {})
          : await rawRequest(w, row.method, path, { headers: row.headers ?? {}, ...(row.body ? { body: row.body } : {}) });
      const statuses = Array.isArray(row.status) ? row.status : [row.status];
      assert.ok(statuses.includes(res.status), `${row.method} ${path.slice(0, 120)} → want ${statuses.join('|')}: ${describeResponse(res)}`);
      if (row.method === 'HEAD') {
        assert.equal(res.body.length, 0, 'HEAD error responses have no body');
      } else if (row.codes.length > 0) {
        const codes = errorCodes(res);
        assert.ok(row.codes.some((c) => codes.includes(c)), `want ${row.codes.join('|')}: ${describeResponse(res)}`);
      }
      await row.check?.();
      assert.deepEqual(await snapshot(), before, 'stored state unchanged');
      const alive = await request(`${w.url}/v2/`);
      assert.equal(alive.status, 200, 'still serving');
    });
  }

  it('the known image is intact after all of the above', async () => {
    const m = await request(`${w.url}/v2/${repo}/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
    assert.deepEqual(m.body, known.manifest);
    for (const b of [known.config, ...known.layers]) {
      const r = await request(`${w.url}/v2/${repo}/blobs/${b.digest}`);
      assert.deepEqual(r.body, b.bytes);
    }
  });
});

// Keep response parsing honest: an error body is JSON with code and message.
describe('error body shape', () => {
  it('is {"errors":[{code, message, detail?}]} as application/json', async () => {
    const res: HttpResponse = await request(`${w.url}/v2/${repo}/manifests/nope`);
    assert.equal(res.status, 404);
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    const body = JSON.parse(res.body.toString()) as { errors: Array<{ code: string; message: unknown }> };
    assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN');
    assert.equal(typeof body.errors[0]!.message, 'string');
  });
});
