/**
 * `localNamespaces`: names under them are local before their first push. The upstream (a real Distribution
 * that HAS images under those names) is never asked, a pull before the push is MANIFEST_UNKNOWN, and the
 * team's first push is accepted instead of DENIED.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertError, getBlob, getManifest, getTags, pullAndVerify, startGhcrUpstream, startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import type { WharfProcess } from '../helpers/wharf.js';

let hub: MirrorUpstream;
let ghcr: MirrorUpstream;
let w: WharfProcess;
const hubImage = makeImage({ layers: 1 });
const ghcrImage = makeImage({ layers: 1 });
const ours = makeImage({ layers: 2 });

/** Everything the upstreams (registry through its proxy, and the token servers) saw. */
function upstreamTraffic(): string[] {
  return [
    ...hub.proxy.requests.map((r) => `hub ${r.method} ${r.path}`),
    ...ghcr.proxy.requests.map((r) => `ghcr ${r.method} ${r.path}`),
    ...(hub.tokens?.requests ?? []).map((r) => `hub token ${r.scope ?? ''}`),
    ...(ghcr.tokens?.requests ?? []).map((r) => `ghcr token ${r.scope ?? ''}`),
  ];
}

before(async () => {
  hub = await startHubUpstream();
  ghcr = await startGhcrUpstream();
  // The public registries hold images under the names the teams use internally.
  await hub.push('team/app', '1', hubImage);
  await ghcr.push('acme/internal', '1', ghcrImage);
  w = await startMirror([hub.config(), ghcr.config()], { localNamespaces: ['team/*', `${ghcr.alias}/acme/**`] });
});
after(async () => {
  await w?.stop();
  await ghcr?.stop();
  await hub?.stop();
});

describe('localNamespaces', () => {
  it('a name under them is MANIFEST_UNKNOWN before its first push, in every spelling, and the upstream receives zero requests', async () => {
    hub.proxy.reset();
    ghcr.proxy.reset();
    if (hub.tokens) hub.tokens.requests.length = 0;
    if (ghcr.tokens) ghcr.tokens.requests.length = 0;
    for (const [repo, via] of [
      ['team/app', {}],
      ['docker.io/team/app', {}],
      ['team/app', { ns: 'docker.io' }],
      [`${ghcr.alias}/acme/internal`, {}],
      ['acme/internal', { ns: ghcr.alias }],
    ] as const) {
      const what = `${repo}${'ns' in via ? `?ns=${via.ns}` : ''}`;
      assertError(await getManifest(w, repo, '1', via), 404, 'MANIFEST_UNKNOWN', `${what}:1`);
      const head = await getManifest(w, repo, '1', { ...via, method: 'HEAD' });
      assert.equal(head.status, 404, `HEAD ${what}:1`);
      assertError(await getManifest(w, repo, hubImage.manifestDigest, via), 404, 'MANIFEST_UNKNOWN', `${what}@digest`);
      assertError(await getBlob(w, repo, hubImage.layers[0]!.digest, via), 404, 'BLOB_UNKNOWN', `${what} blob`);
      const tags = await getTags(w, repo, via);
      assert.notEqual(tags.status, 200, `${what} tag list: nothing local yet, nothing asked upstream`);
    }
    assert.deepEqual(upstreamTraffic(), [], 'no request for a local namespace reaches an upstream');
  });

  it("the team's first push is accepted (not DENIED) and later pulls serve it, never the upstream's image", async () => {
    await pushImage(w.url, 'team/app', '1', ours);
    await pushImage(w.url, `${ghcr.alias}/acme/internal`, '1', ours);
    await pullAndVerify(w, 'team/app', '1', ours);
    await pullAndVerify(w, 'docker.io/team/app', '1', ours);
    await pullAndVerify(w, 'acme/internal', '1', ours, { ns: ghcr.alias });
    assert.deepEqual(upstreamTraffic(), [], 'pushes and pulls of local namespaces stay local');
  });

  it('names outside them are still mirrored', async () => {
    await hub.push('other/app', '1', hubImage);
    await pullAndVerify(w, 'other/app', '1', hubImage);
    assert.ok(hub.proxy.count({ path: '/v2/other/app/manifests/1' }) > 0, 'other/app went upstream');
  });
});
