/**
 * Who may do what (issue 7): the access matrix anonymous/reader/writer/admin × pull/push/delete/overlay
 * through the token flow a docker client uses, refusals that leave nothing in storage, aliases that
 * cannot get around a rule, content isolation by digest, the filtered catalog and cross-repo mounts.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicHeader, manifestAccept, RegistrySession, request, type Credentials, type HttpResponse } from '../helpers/http.js';
import { startHubUpstream, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage, pushImage, writeOciLayout, type TestImage } from '../helpers/oci-image.js';
import { htpasswdFile } from '../helpers/registry.js';
import { copy } from '../helpers/skopeo.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { blobFile, describeResponse, errorCodes, filesUnder, startWharf, type WharfProcess } from '../helpers/wharf.js';

const READER: Credentials = { username: 'reader', password: 'reader-pw' };
const WRITER: Credentials = { username: 'writer', password: 'writer-pw' };
const ADMIN: Credentials = { username: 'admin', password: 'admin-pw' };
type Who = 'anonymous' | 'reader' | 'writer' | 'admin';
const CREDS: Record<Who, Credentials | undefined> = { anonymous: undefined, reader: READER, writer: WRITER, admin: ADMIN };

let hub: MirrorUpstream;
let w: WharfProcess;
let dir: TempDir;

before(async () => {
  dir = await tempDir('wharf-auth-');
  const htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { reader: READER.password, writer: WRITER.password, admin: ADMIN.password });
  hub = await startHubUpstream();
  w = await startWharf({
    config: {
      upstreams: [hub.config()],
      push: { overlay: ['library/*'] },
      auth: {
        htpasswd,
        anonymousPull: false,
        rules: [
          { repositories: ['team/**', 'library/*'], users: ['anonymous'], actions: ['pull'] },
          { repositories: ['team/**', 'library/*'], users: ['writer'], actions: ['push'] },
          { repositories: ['secret/**'], users: ['writer'], actions: ['pull', 'push'] },
          { repositories: ['**'], users: ['admin'], actions: ['pull', 'push', 'delete', 'overlay'] },
        ],
      },
    },
  });
});
after(async () => {
  await w?.stop();
  await hub?.stop();
  await dir?.cleanup();
});

/** A docker-like client: answers the Bearer challenge at wharf's /token, with the user's credentials if any. */
function as(who: Who, scope: string): RegistrySession {
  return new RegistrySession(CREDS[who], scope);
}

function expectOutcome(res: HttpResponse, allowed: boolean, okStatus: number, who: Who, what: string): void {
  if (allowed) {
    assert.equal(res.status, okStatus, `${who} ${what}: ${describeResponse(res)}`);
    return;
  }
  const [status, code] = who === 'anonymous' ? [401, 'UNAUTHORIZED'] : [403, 'DENIED'];
  assert.equal(res.status, status, `${who} ${what}: ${describeResponse(res)}`);
  assert.deepEqual(errorCodes(res), [code], `${who} ${what}`);
  if (status === 401) {
    const challenge = res.headers['www-authenticate'] ?? '';
    assert.match(challenge, new RegExp(`^Bearer realm="${w.url}/token",service="wharf",scope="repository:[^"]+"`), `${who} ${what}: challenge`);
    assert.match(challenge, /error="insufficient_scope"/, `${who} ${what}: a token without the scope was presented`);
  }
}

const admin = (scope: string) => as('admin', scope);

async function adminGet(path: string): Promise<number> {
  return (await admin(`repository:${path.split('/').slice(2, -2).join('/')}:pull`).request(`${w.url}${path}`, { headers: { accept: manifestAccept } })).status;
}

const matrix: Record<Who, Record<'pull' | 'push' | 'delete' | 'overlay', boolean>> = {
  anonymous: { pull: true, push: false, delete: false, overlay: false },
  reader: { pull: true, push: false, delete: false, overlay: false },
  writer: { pull: true, push: true, delete: false, overlay: false },
  admin: { pull: true, push: true, delete: true, overlay: true },
};

describe('access matrix (token flow)', () => {
  const base = makeImage({ layers: 1 });
  before(() => pushImage(w.url, 'team/base', '1', base, ADMIN));

  for (const who of Object.keys(matrix) as Who[]) {
    const allowed = matrix[who];

    it(`${who}: pull ${allowed.pull ? 'allowed' : 'refused'}`, async () => {
      const s = as(who, 'repository:team/base:pull');
      expectOutcome(await s.request(`${w.url}/v2/team/base/manifests/1`, { headers: { accept: manifestAccept } }), allowed.pull, 200, who, 'GET manifest');
      expectOutcome(await s.request(`${w.url}/v2/team/base/blobs/${base.layers[0]!.digest}`), allowed.pull, 200, who, 'GET blob');
    });

    it(`${who}: push ${allowed.push ? 'allowed' : 'refused, leaving no blob, tag or upload'}`, async () => {
      const repo = `team/push-${who}`;
      const img = makeImage({ layers: 1 });
      const s = as(who, `repository:${repo}:pull,push`);
      const tmpBefore = await filesUnder(join(w.dataDir, 'blobs', 'tmp'));
      const layer = img.layers[0]!;
      const mono = await s.request(`${w.url}/v2/${repo}/blobs/uploads/?digest=${layer.digest}`, { method: 'POST', body: layer.bytes });
      expectOutcome(mono, allowed.push, 201, who, 'monolithic blob upload');
      const session = await s.request(`${w.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(0) });
      expectOutcome(session, allowed.push, 202, who, 'upload session');
      const tag = await s.request(`${w.url}/v2/${repo}/manifests/1`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
      // the manifest's config blob was never uploaded: an allowed push gets past auth to MANIFEST_BLOB_UNKNOWN
      if (allowed.push) assert.equal(tag.status, 400, describeResponse(tag));
      else expectOutcome(tag, false, 201, who, 'PUT manifest');
      if (!allowed.push) {
        assert.equal(existsSync(blobFile(w.dataDir, layer.digest)), false, 'no blob file written');
        assert.equal(await adminGet(`/v2/${repo}/blobs/${layer.digest}`), 404, 'no blob linked');
        assert.equal(await adminGet(`/v2/${repo}/manifests/1`), 404, 'no tag');
        assert.deepEqual(await filesUnder(join(w.dataDir, 'blobs', 'tmp')), tmpBefore, 'no upload session file');
      }
    });

    it(`${who}: delete ${allowed.delete ? 'allowed' : 'refused, the manifest stays'}`, async () => {
      const repo = `team/del-${who}`;
      const img = makeImage({ layers: 1 });
      await pushImage(w.url, repo, '1', img, ADMIN);
      const res = await as(who, `repository:${repo}:delete`).request(`${w.url}/v2/${repo}/manifests/${img.manifestDigest}`, { method: 'DELETE' });
      expectOutcome(res, allowed.delete, 202, who, 'DELETE manifest');
      assert.equal(await adminGet(`/v2/${repo}/manifests/${img.manifestDigest}`), allowed.delete ? 404 : 200);
    });

    it(`${who}: pushing over upstream tags (overlay) ${allowed.overlay ? 'allowed' : 'refused, no tag'}`, async () => {
      const repo = `library/ovl-${who}`;
      const img = makeImage({ layers: 1 });
      await pushImage(w.url, repo, 'seed', img, ADMIN); // blobs linked, so only the grant decides
      const res = await as(who, `repository:${repo}:pull,push`).request(`${w.url}/v2/${repo}/manifests/mine`, {
        method: 'PUT',
        headers: { 'content-type': img.mediaType },
        body: img.manifest,
      });
      expectOutcome(res, allowed.overlay, 201, who, 'PUT manifest into an overlay repository');
      assert.equal(await adminGet(`/v2/${repo}/manifests/mine`), allowed.overlay ? 200 : 404);
    });
  }

  it('an upload session another user started cannot be written or completed without push', async () => {
    const repo = 'team/session';
    const layer = makeImage({ layers: 1 }).layers[0]!;
    const writer = as('writer', `repository:${repo}:pull,push`);
    const start = await writer.request(`${w.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(0) });
    assert.equal(start.status, 202, describeResponse(start));
    const location = new URL(start.headers.location!, w.url);
    const reader = as('reader', `repository:${repo}:pull,push`);
    expectOutcome(await reader.request(location.toString(), { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: layer.bytes }), false, 202, 'reader', 'PATCH');
    location.searchParams.set('digest', layer.digest);
    expectOutcome(await reader.request(location.toString(), { method: 'PUT', body: layer.bytes }), false, 201, 'reader', 'PUT');
    const status = await writer.request(new URL(start.headers.location!, w.url).toString());
    assert.equal(status.status, 204, describeResponse(status));
    assert.equal(status.headers.range, '0-0', 'the session received no bytes');
    assert.equal(existsSync(blobFile(w.dataDir, layer.digest)), false);
  });
});

describe('Basic credentials and static rules on /v2', () => {
  it('Basic auth is accepted directly; a wrong password is 401, never anonymous', async () => {
    const ping = await request(`${w.url}/v2/`);
    assert.equal(ping.status, 401);
    assert.equal(ping.headers['www-authenticate'], `Bearer realm="${w.url}/token",service="wharf"`);
    assert.equal((await request(`${w.url}/v2/`, { headers: { authorization: basicHeader(READER) } })).status, 200);
    const wrong = await request(`${w.url}/v2/team/base/tags/list`, { headers: { authorization: basicHeader({ ...READER, password: 'nope' }) } });
    assert.equal(wrong.status, 401, describeResponse(wrong));
    const denied = await request(`${w.url}/v2/secret/x/tags/list`, { headers: { authorization: basicHeader(READER) } });
    assert.equal(denied.status, 403, describeResponse(denied));
    assert.deepEqual(errorCodes(denied), ['DENIED']);
  });

  it('an alias of a repository is the same repository to the rules (docker.io/ prefix, ns=, one-segment names)', async () => {
    await pushImage(w.url, 'secret/app', '1', makeImage({ layers: 1 }), WRITER);
    for (const path of ['/v2/secret/app/tags/list', '/v2/docker.io/secret/app/tags/list', '/v2/index.docker.io/secret/app/tags/list', '/v2/secret/app/tags/list?ns=docker.io']) {
      const anon = await request(`${w.url}${path}`);
      assert.equal(anon.status, 401, `anonymous ${path}: ${describeResponse(anon)}`);
      const reader = await request(`${w.url}${path}`, { headers: { authorization: basicHeader(READER) } });
      assert.equal(reader.status, 403, `reader ${path}: ${describeResponse(reader)}`);
      const writer = await request(`${w.url}${path}`, { headers: { authorization: basicHeader(WRITER) } });
      assert.equal(writer.status, 200, `writer ${path}: ${describeResponse(writer)}`);
    }
    // `ovl` is library/ovl on docker.io: an overlay repository, whichever way it is named
    const img = makeImage({ layers: 1 });
    await pushImage(w.url, 'library/ovl', 'seed', img, ADMIN);
    for (const name of ['ovl', 'docker.io/library/ovl', 'library/ovl']) {
      const res = await request(`${w.url}/v2/${name}/manifests/x`, { method: 'PUT', headers: { authorization: basicHeader(WRITER), 'content-type': img.mediaType }, body: img.manifest });
      assert.equal(res.status, 403, `writer overlay push as ${name}: ${describeResponse(res)}`);
    }
  });
});

describe('content isolation', () => {
  let secret: TestImage;
  before(async () => {
    secret = makeImage({ layers: 1 });
    await pushImage(w.url, 'secret/vault', '1', secret, WRITER);
  });

  it('a private blob or manifest asked for by digest under another repository is unknown, to anonymous callers and to users without rights', async () => {
    for (const who of ['anonymous', 'reader'] as const) {
      const s = as(who, 'repository:team/base:pull');
      const blob = await s.request(`${w.url}/v2/team/base/blobs/${secret.layers[0]!.digest}`);
      assert.equal(blob.status, 404, `${who}: ${describeResponse(blob)}`);
      assert.deepEqual(errorCodes(blob), ['BLOB_UNKNOWN']);
      const manifest = await s.request(`${w.url}/v2/team/base/manifests/${secret.manifestDigest}`, { headers: { accept: manifestAccept } });
      assert.equal(manifest.status, 404, `${who}: ${describeResponse(manifest)}`);
      assert.deepEqual(errorCodes(manifest), ['MANIFEST_UNKNOWN']);
      const direct = await as(who, 'repository:secret/vault:pull').request(`${w.url}/v2/secret/vault/blobs/${secret.layers[0]!.digest}`);
      assert.equal(direct.status, who === 'anonymous' ? 401 : 403, `${who} under its own repository: ${describeResponse(direct)}`);
    }
  });

  it('a cross-repository mount needs pull on `from`: without it a plain upload session, no link', async () => {
    const layer = secret.layers[0]!.digest;
    // a reader may not push at all: refused before the mount is looked at
    const reader = new RegistrySession(READER, 'repository:team/mount-r:pull,push repository:secret/vault:pull');
    const denied = await reader.request(`${w.url}/v2/team/mount-r/blobs/uploads/?mount=${layer}&from=secret/vault`, { method: 'POST', body: Buffer.alloc(0) });
    assert.equal(denied.status, 403, describeResponse(denied));
    // writer may pull secret/vault: the mount links the blob
    const mounted = await new RegistrySession(WRITER, 'repository:team/mount-w:pull,push repository:secret/vault:pull').request(
      `${w.url}/v2/team/mount-w/blobs/uploads/?mount=${layer}&from=secret/vault`,
      { method: 'POST', body: Buffer.alloc(0) },
    );
    assert.equal(mounted.status, 201, describeResponse(mounted));
    // admin may push to team/** but its token holds no pull on `from` here: a plain session, nothing linked
    const adminNoFrom = new RegistrySession(ADMIN, 'repository:team/mount-a:pull,push');
    const plain = await adminNoFrom.request(`${w.url}/v2/team/mount-a/blobs/uploads/?mount=${layer}&from=secret/vault`, { method: 'POST', body: Buffer.alloc(0) });
    assert.equal(plain.status, 202, describeResponse(plain));
    assert.equal(await adminGet(`/v2/team/mount-a/blobs/${layer}`), 404, 'not linked');
  });

  it('the catalog lists only repositories the caller may pull', async () => {
    const names = async (creds?: Credentials): Promise<string[]> => {
      const res = await request(`${w.url}/v2/_catalog`, creds ? { headers: { authorization: basicHeader(creds) } } : {});
      assert.equal(res.status, 200, describeResponse(res));
      return (JSON.parse(res.body.toString('utf8')) as { repositories: string[] }).repositories;
    };
    const anon = await names();
    assert.ok(anon.includes('team/base'), JSON.stringify(anon));
    assert.ok(!anon.some((n) => n.startsWith('secret/')), `anonymous sees no private repository: ${JSON.stringify(anon)}`);
    assert.ok(!(await names(READER)).some((n) => n.startsWith('secret/')));
    assert.ok((await names(WRITER)).includes('secret/vault'));
    const paged = await request(`${w.url}/v2/_catalog?n=1`);
    assert.equal((JSON.parse(paged.body.toString('utf8')) as { repositories: string[] }).repositories.length, 1);
    assert.match(paged.headers.link ?? '', /rel="next"/);
  });
});

describe('skopeo', () => {
  it('pushes with --dest-creds of a user allowed to push, and fails without credentials or as a reader', async () => {
    const src = await tempDir();
    try {
      const img = makeImage({ layers: 2 });
      const ref = await writeOciLayout(src.path, 'v1', img);
      await assert.rejects(copy(ref, `docker://${w.host}/team/sk:v1`), /unauthorized|authentication required|401/i, 'anonymous push');
      await assert.rejects(copy(ref, `docker://${w.host}/team/sk:v1`, { destCreds: `${READER.username}:${READER.password}` }), /denied|403/i, 'reader push');
      assert.equal(await adminGet('/v2/team/sk/manifests/v1'), 404, 'nothing pushed');
      await copy(ref, `docker://${w.host}/team/sk:v1`, { destCreds: `${WRITER.username}:${WRITER.password}` });
      assert.equal(await adminGet(`/v2/team/sk/manifests/${img.manifestDigest}`), 200);
    } finally {
      await src.cleanup();
    }
  });
});
