import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchBlob, fetchManifest, request } from '../helpers/http.js';
import {
  blobsOf,
  makeImage,
  makeMultiPlatform,
  pushImage,
  readOciLayout,
  sha256,
  writeOciLayout,
} from '../helpers/oci-image.js';
import { copy, inspectRaw } from '../helpers/skopeo.js';
import { onS3Redirect } from '../helpers/test-storage.js';
import { tempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

let w: WharfProcess;
before(async () => {
  w = await startWharf();
});
after(() => w?.stop());

/** Reads a `dir:` transport directory: blobs are files named by their hex digest. */
function dirFile(dir: string, digest: string): Promise<Buffer> {
  return readFile(join(dir, digest.slice('sha256:'.length)));
}

describe('skopeo round trips through wharf', () => {
  it('copies a two-platform OCI index in and back out with identical digests and bytes', async (t) => {
    const src = await tempDir();
    const dst = await tempDir();
    t.after(() => Promise.all([src.cleanup(), dst.cleanup()]));
    const index = makeMultiPlatform({ format: 'oci', layers: 2 });
    const ref = await writeOciLayout(src.path, 'v1', index);

    await copy(ref, `docker://${w.host}/sk/multi:v1`, { all: true });
    assert.deepEqual(await inspectRaw(`docker://${w.host}/sk/multi:v1`), index.bytes, 'index bytes as pushed');

    await copy(`docker://${w.host}/sk/multi:v1`, `oci:${dst.path}:v1`, { all: true });
    const back = await readOciLayout(dst.path, 'v1');
    assert.equal(back.digest, index.digest);
    assert.deepEqual(back.bytes, index.bytes);
    for (const img of index.images) {
      const m = await readFile(join(dst.path, 'blobs', 'sha256', img.manifestDigest.slice(7)));
      assert.deepEqual(m, img.manifest, `child ${img.platform.architecture} bytes`);
      for (const b of [img.config, ...img.layers]) {
        const got = await readFile(join(dst.path, 'blobs', 'sha256', b.digest.slice(7)));
        assert.equal(sha256(got), b.digest);
      }
    }
    const byDigest = await fetchManifest(w.url, 'sk/multi', index.digest);
    assert.equal(byDigest.status, 200, describeResponse(byDigest));
    assert.deepEqual(byDigest.body, index.bytes);
  });

  it('serves a Docker manifest list pushed over HTTP to skopeo and raw HTTP, by tag and by digest', async (t) => {
    const list = makeMultiPlatform({ format: 'docker' });
    await pushImage(w.url, 'sk/list', 'v1', list);

    for (const ref of [`docker://${w.host}/sk/list:v1`, `docker://${w.host}/sk/list@${list.digest}`]) {
      assert.deepEqual(await inspectRaw(ref), list.bytes, ref);
    }
    for (const r of ['v1', list.digest]) {
      const res = await fetchManifest(w.url, 'sk/list', r);
      assert.equal(res.status, 200, describeResponse(res));
      assert.equal(res.headers['content-type'], DOCKER_LIST);
      assert.equal(res.headers['docker-content-digest'], list.digest);
      assert.deepEqual(res.body, list.bytes);
    }

    // A `dir:` destination keeps Docker manifests as they are (an oci: one would convert them).
    const out = await tempDir();
    t.after(() => out.cleanup());
    await copy(`docker://${w.host}/sk/list@${list.digest}`, `dir:${out.path}`, { all: true });
    assert.deepEqual(await readFile(join(out.path, 'manifest.json')), list.bytes);
    for (const b of blobsOf(list)) assert.equal(sha256(await dirFile(out.path, b.digest)), b.digest);
  });

  it('round-trips a Docker schema2 image: skopeo pull, and a skopeo push between repositories', async (t) => {
    const img = makeImage({ format: 'docker', layers: 3 });
    await pushImage(w.url, 'sk/docker', 'v1', img);
    assert.deepEqual(await inspectRaw(`docker://${w.host}/sk/docker:v1`), img.manifest);

    const out = await tempDir();
    t.after(() => out.cleanup());
    await copy(`docker://${w.host}/sk/docker:v1`, `dir:${out.path}`);
    assert.deepEqual(await readFile(join(out.path, 'manifest.json')), img.manifest);
    for (const b of blobsOf(img)) assert.deepEqual(await dirFile(out.path, b.digest), b.bytes);

    // skopeo pushing within one registry tries cross-repository mounts for every blob
    await copy(`docker://${w.host}/sk/docker:v1`, `docker://${w.host}/sk/docker-copy:v2`);
    const copied = await fetchManifest(w.url, 'sk/docker-copy', 'v2');
    assert.equal(copied.status, 200, describeResponse(copied));
    assert.equal(copied.headers['content-type'], DOCKER_MANIFEST);
    assert.equal(copied.headers['docker-content-digest'], img.manifestDigest);
    assert.deepEqual(copied.body, img.manifest);
    for (const b of blobsOf(img)) {
      let res = await fetchBlob(w.url, 'sk/docker-copy', b.digest);
      if (onS3Redirect) {
        // The bytes come from the bucket, not through wharf: follow the presigned URL as a client does.
        assert.equal(res.status, 307, `${b.digest}: ${describeResponse(res)}`);
        res = await request(res.headers.location!);
      }
      assert.equal(res.status, 200, `${b.digest}: ${describeResponse(res)}`);
      assert.deepEqual(res.body, b.bytes);
    }

    // and back in from a local directory, as a fresh push
    await copy(`dir:${out.path}`, `docker://${w.host}/sk/docker-fromdir:v1`);
    assert.deepEqual(await inspectRaw(`docker://${w.host}/sk/docker-fromdir:v1`), img.manifest);
  });
});
