/**
 * Webhooks for mirrored content: `pull` per client request (cached or not), `cache` once per manifest or
 * blob that newly arrived from the upstream (with its name), `tag-moved` when revalidation finds the
 * upstream tag on a new digest. Real Distribution upstream, real receiver.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { makeImage } from '../helpers/oci-image.js';
import { getManifest, pullAndVerify, startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook.js';
import type { WharfProcess } from '../helpers/wharf.js';

describe('notifications: mirror events', () => {
  let hub: MirrorUpstream;
  let w: WharfProcess;
  let rx: WebhookReceiver;

  before(async () => {
    rx = await startReceiver('ok');
    hub = await startHubUpstream({ tagFreshness: '1s' });
    w = await startMirror([hub.config()], { notifications: { endpoints: [{ name: 'all', url: rx.url, ignore: { actions: [] } }] } });
  });
  after(async () => {
    await w?.stop();
    await hub?.stop();
    await rx?.stop();
  });

  it('reports content cached from the upstream once, and every client pull', async () => {
    const img = makeImage({ format: 'docker' });
    await hub.push('library/alpine', '3', img);
    await pullAndVerify(w, 'library/alpine', '3', img);
    await pullAndVerify(w, 'library/alpine', '3', img);
    const blobs = [img.config.digest, ...img.layers.map((l) => l.digest)];
    const cached = (e: Array<Record<string, any>>) => e.filter((x) => x.action === 'cache');
    await rx.waitFor((e) => cached(e).length >= 1 + blobs.length, 30_000, 'cache events');
    await rx.waitFor((e) => e.filter((x) => x.action === 'pull').length >= 2 * (1 + blobs.length), 30_000, 'pull events');
    const c = cached(rx.events());
    assert.deepEqual(c.map((x) => x.target.digest).sort(), [img.manifestDigest, ...blobs].sort(), 'one cache event per manifest and blob');
    for (const x of c) {
      assert.equal(x.target.upstream, 'docker.io');
      assert.equal(x.target.repository, 'library/alpine');
      assert.deepEqual(x.request, {});
    }
    const manifest = c.find((x) => x.target.digest === img.manifestDigest)!;
    assert.equal(manifest.target.mediaType, img.mediaType);
    assert.equal(manifest.target.tag, '3');
    const pulls = rx.events().filter((x) => x.action === 'pull' && x.target.digest === img.manifestDigest);
    assert.equal(pulls.length, 2, 'one pull event per client request');
    assert.equal(pulls[0]!.target.tag, '3');
  });

  it('reports a tag that moved upstream as tag-moved', async () => {
    const next = makeImage({ format: 'docker' });
    await hub.push('library/alpine', '3', next);
    // Past the 1 s freshness window the tag is revalidated: the HEAD finds the new digest.
    const deadline = Date.now() + 20_000;
    while (!rx.events().some((e) => e.action === 'tag-moved') && Date.now() < deadline) {
      assert.equal((await getManifest(w, 'library/alpine', '3')).status, 200);
      await new Promise((r) => setTimeout(r, 300));
    }
    const moved = rx.events().find((e) => e.action === 'tag-moved');
    assert.ok(moved, 'a tag-moved event');
    assert.equal(moved.target.digest, next.manifestDigest);
    assert.equal(moved.target.tag, '3');
    assert.equal(moved.target.upstream, 'docker.io');
  });
});
