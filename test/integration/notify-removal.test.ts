/**
 * Webhooks for mirrored content removed: `purge` (`wharf purge`, the admin API) and `evict` (cache
 * eviction), one per tag and per manifest or blob link removed, with the upstream's name. Real Distribution
 * upstream, real receiver.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { makeImage, type TestImage } from '../helpers/oci-image.js';
import { pullAndVerify, show, startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook.js';
import { waitIdle, type WharfProcess } from '../helpers/wharf.js';

const digestsOf = (img: TestImage): string[] => [img.manifestDigest, img.config.digest, ...img.layers.map((l) => l.digest)];

describe('notifications: purge and evict', () => {
  let hub: MirrorUpstream;
  let w: WharfProcess;
  let rx: WebhookReceiver;

  before(async () => {
    rx = await startReceiver('ok');
    hub = await startHubUpstream();
    w = await startMirror([hub.config()], {
      // Eviction runs only when the test asks (POST /_wharf/admin/evict).
      cache: { maxSize: '1MiB', highWatermark: 0.95, lowWatermark: 0.85, evictionInterval: '1h' },
      notifications: { endpoints: [{ name: 'all', url: rx.url, ignore: { actions: ['pull', 'cache'] } }] },
    });
  });
  after(async () => {
    await w?.stop();
    await hub?.stop();
    await rx?.stop();
  });

  it('wharf purge reports the tag and every manifest and blob it removed', async () => {
    const img = makeImage({ format: 'docker' });
    await hub.push('library/gone', '1', img);
    await pullAndVerify(w, 'library/gone', '1', img);
    await waitIdle(w);
    const res = await request(`${w.url}/_wharf/admin/images?ref=library/gone:1`, { method: 'DELETE' });
    assert.equal(res.status, 200, show(res));
    const purged = (e: Array<Record<string, any>>) => e.filter((x) => x.action === 'purge');
    await rx.waitFor((e) => purged(e).length >= 1 + digestsOf(img).length, 30_000, 'purge events');
    const got = purged(rx.events());
    assert.deepEqual(got.filter((x) => x.target.tag).map((x) => x.target.tag), ['1']);
    assert.deepEqual(got.filter((x) => x.target.digest).map((x) => x.target.digest).sort(), digestsOf(img).sort());
    for (const x of got) {
      assert.equal(x.target.repository, 'library/gone');
      assert.equal(x.target.upstream, 'docker.io');
      assert.deepEqual(x.request, {}, 'no request record: the admin API is not the registry API');
    }
    assert.equal(got.find((x) => x.target.digest === img.manifestDigest)!.target.mediaType, img.mediaType);
  });

  it('eviction reports every manifest and blob it removed', async () => {
    const old = makeImage({ format: 'docker', layers: 2, layerSize: 300_000 });
    const recent = makeImage({ format: 'docker', layers: 2, layerSize: 300_000 });
    await hub.push('library/old', '1', old);
    await hub.push('library/recent', '1', recent);
    await pullAndVerify(w, 'library/old', '1', old);
    await waitIdle(w);
    await pullAndVerify(w, 'library/recent', '1', recent);
    await waitIdle(w);
    const res = await request(`${w.url}/_wharf/admin/evict`, { method: 'POST' });
    assert.equal(res.status, 200, show(res));
    const evicted = (JSON.parse(res.body.toString('utf8')) as { evicted: string[] }).evicted;
    assert.ok(evicted.includes(old.layers[0]!.digest), `the least recently used went first: ${JSON.stringify(evicted)}`);
    const evicts = (e: Array<Record<string, any>>) => e.filter((x) => x.action === 'evict' && x.target.digest && !x.target.tag);
    await rx.waitFor((e) => evicts(e).length >= evicted.length, 30_000, 'evict events');
    const got = evicts(rx.events());
    assert.deepEqual(got.map((x) => x.target.digest).sort(), [...evicted].sort(), 'one event per digest removed (each linked from one repository)');
    for (const x of got) {
      assert.equal(x.target.repository, digestsOf(old).includes(x.target.digest) ? 'library/old' : 'library/recent');
      assert.equal(x.target.upstream, 'docker.io');
      assert.equal(typeof x.target.size, 'number');
    }
  });
});
