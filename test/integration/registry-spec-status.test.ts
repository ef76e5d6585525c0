/**
 * distribution-spec (spec.md, v1.1) status-code and error-code requirements, endpoint by endpoint. Each row
 * quotes the sentence it checks. Run against a local registry and against a mirrored repository (a real
 * Distribution 2.8 upstream behind a counting proxy): a reference that cannot exist never goes upstream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { describeResponse, errorCodes, rawHead, type WharfProcess } from '../helpers/wharf.js';

/** spec.md "Error Codes": "The `code` field MUST be one of the following" (code-1 … code-14). */
const SPEC_CODES = new Set([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
]);
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

let up: MirrorUpstream;
let w: WharfProcess;
const local = 'team/app';
const mirrored = 'library/spec';
const img = makeImage({ layers: 1 });
const unknownDigest = sha256('no manifest has these bytes');

before(async () => {
  up = await startHubUpstream();
  await up.push(mirrored, 'v1', img);
  w = await startMirror([up.config()], { push: { overlay: [] } });
  await pushImage(w.url, local, 'v1', img);
});
after(async () => {
  await w?.stop();
  await up?.stop();
});

interface Row {
  spec: string;
  method: 'GET' | 'HEAD' | 'DELETE' | 'PUT';
  path: (repo: string) => string;
  status: number;
  code?: string;
  body?: Buffer;
}

/** References no manifest can have: not a tag (grammar), not a digest (grammar). */
const invalidRefs = ['.INVALID', '-dash', 't'.repeat(129), 'v%2e1', 'sha256:zz', 'md5:abc', 'a:b:c'];

const rows: Row[] = [
  ...invalidRefs.flatMap((ref): Row[] =>
    (['GET', 'HEAD'] as const).map((method) => ({
      spec: 'end-3: "If the manifest is not found in the repository, the response code MUST be 404 Not Found."',
      method,
      path: (repo) => `/v2/${repo}/manifests/${ref}`,
      status: 404,
      code: 'MANIFEST_UNKNOWN',
    })),
  ),
  ...invalidRefs.map(
    (ref): Row => ({
      spec: 'end-9: DELETE of a manifest that does not exist: 404 (end-9 answers 202 / 404 / 400 / 405)',
      method: 'DELETE',
      path: (repo) => `/v2/${repo}/manifests/${ref}`,
      status: 404,
      code: 'MANIFEST_UNKNOWN',
    }),
  ),
  {
    spec: 'end-3: a valid tag that names nothing: 404 MANIFEST_UNKNOWN',
    method: 'GET',
    path: (repo) => `/v2/${repo}/manifests/never-pushed`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
  },
  {
    spec: 'end-3: a digest that names nothing: 404 MANIFEST_UNKNOWN',
    method: 'HEAD',
    path: (repo) => `/v2/${repo}/manifests/${unknownDigest}`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
  },
  {
    spec: 'end-2: "If the blob is not found in the repository, the response code MUST be 404 Not Found."',
    method: 'GET',
    path: (repo) => `/v2/${repo}/blobs/${unknownDigest}`,
    status: 404,
    code: 'BLOB_UNKNOWN',
  },
  {
    spec: 'end-9: DELETE of a valid tag that names nothing: 404 MANIFEST_UNKNOWN',
    method: 'DELETE',
    path: (repo) => `/v2/${repo}/manifests/never-pushed`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
  },
  {
    spec: 'end-10: "If the blob had already been deleted or did not exist, a 404 Not Found response will be issued instead."',
    method: 'DELETE',
    path: (repo) => `/v2/${repo}/blobs/${unknownDigest}`,
    status: 404,
    code: 'BLOB_UNKNOWN',
  },
  {
    spec: 'end-13: an upload session the registry does not know: 404 BLOB_UPLOAD_UNKNOWN',
    method: 'GET',
    path: (repo) => `/v2/${repo}/blobs/uploads/no-such-session`,
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
  },
];

async function send(row: Row, repo: string): Promise<HttpResponse> {
  const path = row.path(repo);
  if (row.method === 'HEAD') return rawHead(w, path, { accept: OCI_MANIFEST });
  return request(`${w.url}${path}`, { method: row.method, headers: { accept: OCI_MANIFEST }, ...(row.body ? { body: row.body } : {}) });
}

for (const [kind, repo] of [
  ['local', local],
  ['mirrored', mirrored],
] as const) {
  describe(`spec status codes (${kind} repository)`, () => {
    for (const row of rows) {
      it(`${row.method} ${row.path('<name>')} → ${row.status} — ${row.spec}`, async () => {
        const res = await send(row, repo);
        assert.equal(res.status, row.status, describeResponse(res));
        if (row.method === 'HEAD') {
          assert.equal(res.body.length, 0, 'a HEAD answer carries no body');
          return;
        }
        const codes = errorCodes(res);
        if (row.code !== undefined) assert.deepEqual(codes, [row.code], describeResponse(res));
        for (const c of codes) assert.ok(SPEC_CODES.has(c), `error code ${c} is not in the spec's table`);
      });
    }
  });
}

describe('spec status codes: what stays 400', () => {
  it('end-7: a PUT to an invalid tag is refused with 400 and stores nothing', async () => {
    const res = await request(`${w.url}/v2/${local}/manifests/.INVALID`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: img.manifest });
    assert.equal(res.status, 400, describeResponse(res));
    const tags = JSON.parse((await request(`${w.url}/v2/${local}/tags/list`)).body.toString()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1']);
  });

  it('end-12a: "If the request is invalid, such as a <digest> with an invalid syntax, a 400 Bad Request MUST be returned."', async () => {
    const res = await request(`${w.url}/v2/${local}/referrers/sha256:nope`);
    assert.equal(res.status, 400, describeResponse(res));
    assert.deepEqual(errorCodes(res), ['DIGEST_INVALID']);
  });
});

describe('spec status codes: referrers never 404', () => {
  it('end-12a: "the registry MUST NOT return a 404 Not Found to a referrers API requests" — an unknown repository gets an empty index', async () => {
    const res = await request(`${w.url}/v2/nobody/here/referrers/${unknownDigest}`);
    assert.equal(res.status, 200, describeResponse(res));
    assert.equal(res.headers['content-type'], OCI_INDEX, '"The Content-Type header MUST be set to application/vnd.oci.image.index.v1+json."');
    assert.deepEqual((JSON.parse(res.body.toString()) as { manifests: unknown[] }).manifests, []);
  });
});

describe('a reference that cannot exist never reaches the upstream', () => {
  it('no upstream manifest request was sent for any invalid reference', () => {
    const sent = up.proxy.requests.filter((r) => r.path.includes('/manifests/') && invalidRefs.some((ref) => r.path.endsWith(`/manifests/${ref}`)));
    assert.deepEqual(sent, []);
  });
});
