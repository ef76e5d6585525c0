/**
 * Local and mirrored repositories side by side: local names never go upstream, links gate access,
 * pushes into mirrored repositories are refused unless overlaid, and overlaid tags win.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertError,
  getBlob,
  getManifest,
  getTags,
  pullAndVerify,
  repoPath,
  seen,
  show,
  sleep,
  startHubUpstream,
  startMirror,
  type MirrorUpstream,
} from '../helpers/mirror.js';
import { request } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import type { WharfProcess } from '../helpers/wharf.js';

let hub: MirrorUpstream;
let w: WharfProcess;

before(async () => {
  hub = await startHubUpstream({ tagFreshness: '1s' });
  w = await startMirror([hub.config()], { push: { overlay: ['library/*'] } });
});
after(async () => {
  await w?.stop();
  await hub?.stop();
});

function tagsOf(res: { status: number; body: Buffer }): string[] {
  assert.equal(res.status, 200, `tag list: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 300)}`);
  return ((JSON.parse(res.body.toString('utf8')) as { tags?: string[] }).tags ?? []).slice().sort();
}

describe('local repositories', () => {
  const app = makeImage({ layers: 1 });
  const other = makeImage({ layers: 1 });

  before(async () => {
    await pushImage(w.url, 'team/app', '1', app);
    await pushImage(w.url, 'team/other', '1', other);
  });

  it('the first push of a new repository name sends nothing upstream (its name never leaks)', async () => {
    const mark = hub.proxy.requests.length;
    await pushImage(w.url, 'team/fresh', '1', makeImage({ layers: 2 }));
    const leaked = hub.proxy.requests.slice(mark).map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(leaked, [], 'a push of a new name must not reach the upstream (docker checks blobs with HEAD first)');
  });

  it('a tag never pushed to a local repository is MANIFEST_UNKNOWN with no upstream request', async () => {
    const mark = hub.proxy.requests.length;
    assertError(await getManifest(w, 'team/app', '2'), 404, 'MANIFEST_UNKNOWN', 'team/app:2');
    const head = await getManifest(w, 'team/app', '2', { method: 'HEAD' });
    assert.equal(head.status, 404, `HEAD team/app:2: ${show(head)}`);
    assertError(await getManifest(w, 'team/app', sha256('nope')), 404, 'MANIFEST_UNKNOWN', 'team/app@unknown digest');
    assertError(await getBlob(w, 'team/app', sha256('nope')), 404, 'BLOB_UNKNOWN', 'team/app unknown blob');
    await sleep(1100); // past the upstream's tagFreshness: a local tag is still not revalidated
    await pullAndVerify(w, 'team/app', '1', app);
    assert.deepEqual(tagsOf(await getTags(w, 'team/app')), ['1']);
    const leaked = hub.proxy.requests.slice(mark).filter((r) => repoPath('team/app').test(r.path));
    assert.deepEqual(leaked.map((r) => `${r.method} ${r.path}`), [], 'a local repository never goes upstream');
  });

  it("a local repository's private blob is BLOB_UNKNOWN under another repository", async () => {
    const digest = app.layers[0]!.digest;
    assertError(await getBlob(w, 'team/other', digest), 404, 'BLOB_UNKNOWN', 'GET under another local repository');
    const head = await getBlob(w, 'team/other', digest, { method: 'HEAD' });
    assert.equal(head.status, 404, `HEAD under another local repository: ${show(head)}`);
    // a mirrored repository gets it only if its upstream vouches for it (here it does not have it)
    assertError(await getBlob(w, 'acme/stranger', digest), 404, 'BLOB_UNKNOWN', 'GET under a mirrored repository');
    assertError(await getManifest(w, 'acme/stranger', app.manifestDigest), 404, 'MANIFEST_UNKNOWN', 'manifest digest under a mirrored repository');
  });
});

describe('pushing into mirrored repositories', () => {
  it('a repository holding mirrored content refuses pushes with 403 DENIED', async () => {
    const x = makeImage({ layers: 1 });
    await hub.push('acme/mirrored', '1', x);
    await pullAndVerify(w, 'acme/mirrored', '1', x);

    const post = await request(`${w.url}/v2/acme/mirrored/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(0) });
    assertError(post, 403, 'DENIED', 'upload into a mirrored repository');
    const put = await request(`${w.url}/v2/acme/mirrored/manifests/2`, { method: 'PUT', headers: { 'content-type': x.mediaType }, body: x.manifest });
    assertError(put, 403, 'DENIED', 'manifest PUT into a mirrored repository');
    // the mirrored tag is untouched
    await pullAndVerify(w, 'acme/mirrored', '1', x);
  });

  it('in an overlay repository the local tag wins and a refresh does not replace it; the tag list is the union', async () => {
    const upstreamStable = makeImage({ layers: 1 });
    const upstream10 = makeImage({ layers: 1 });
    const upstream11 = makeImage({ layers: 1 });
    const local = makeImage({ layers: 1 });
    await hub.push('library/nginx', 'stable', upstreamStable);
    await hub.push('library/nginx', '1.0', upstream10);
    await hub.push('library/nginx', '1.1', upstream11);

    await pullAndVerify(w, 'nginx', '1.0', upstream10); // the repository now holds mirrored content
    await pushImage(w.url, 'library/nginx', 'stable', local); // overlay: allowed
    await pushImage(w.url, 'library/nginx', 'local-only', local);

    const mark = hub.proxy.requests.length;
    await pullAndVerify(w, 'nginx', 'stable', local);
    await sleep(1100); // past tagFreshness
    await hub.push('library/nginx', 'stable', makeImage({ layers: 1 })); // the upstream moves on
    await pullAndVerify(w, 'nginx', 'stable', local);
    await pullAndVerify(w, 'docker.io/library/nginx', 'stable', local);
    const asked = hub.proxy.requests.slice(mark).filter((r) => r.path === '/v2/library/nginx/manifests/stable');
    assert.deepEqual(asked.map((r) => `${r.method} ${r.path}`), [], 'the local tag is never revalidated against the upstream');

    // the mirrored tags of the overlay repository still follow the upstream
    const before10 = hub.proxy.count({ path: '/v2/library/nginx/manifests/1.0' });
    await pullAndVerify(w, 'nginx', '1.0', upstream10);
    assert.ok(hub.proxy.count({ path: '/v2/library/nginx/manifests/1.0' }) > before10, `mirrored tag revalidated:\n${seen(hub.proxy, { path: repoPath('library/nginx') })}`);

    assert.deepEqual(tagsOf(await getTags(w, 'nginx')), ['1.0', '1.1', 'local-only', 'stable'], 'union of upstream and local tags');

    await hub.registry.kill();
    try {
      // The listing is served, not failed: the local tags, and the upstream's list as last read (README: tags/list).
      const down = tagsOf(await getTags(w, 'library/nginx'));
      assert.deepEqual(down, ['1.0', '1.1', 'local-only', 'stable'], `listed with the upstream down: nothing invented, nothing lost: ${down.join(',')}`);
    } finally {
      await hub.registry.start();
    }
  });

  it('a repository that is not an overlay and holds mirrored content keeps refusing after a refresh', async () => {
    const x = makeImage({ layers: 1 });
    await hub.push('acme/strict', '1', x);
    await pullAndVerify(w, 'acme/strict', '1', x);
    const res = await request(`${w.url}/v2/acme/strict/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(0) });
    assertError(res, 403, 'DENIED', 'upload');
    assert.deepEqual(tagsOf(await getTags(w, 'acme/strict')), ['1'], 'tag list of a mirrored repository comes from the upstream');
  });
});
