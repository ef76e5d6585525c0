/**
 * `push.immutableTags`: a tag matching a rule never moves to another digest and is never deleted, nor is the
 * manifest it points at; pushing the same digest again is fine. Two replicas sharing Redis and a data
 * directory, with wharf's own auth (alice may push and delete), skopeo pushes and curl-style DELETEs, on a
 * local repository and on overlay tags over a mirrored one.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RegistrySession, type HttpResponse } from '../helpers/http.js';
import { startHubUpstream, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage, writeOciLayout, type TestImage } from '../helpers/oci-image.js';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { htpasswdFile } from '../helpers/registry.js';
import { copy, inspectRaw } from '../helpers/skopeo.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';

const ALICE = { username: 'alice', password: 'alice-pw' };
const CREDS = `${ALICE.username}:${ALICE.password}`;
const keyPrefix = testPrefix();

let dir: TempDir;
let hub: MirrorUpstream;
let a: WharfProcess;
let b: WharfProcess;

before(async () => {
  dir = await tempDir('wharf-immutable-');
  const htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { alice: ALICE.password });
  hub = await startHubUpstream();
  await hub.push('library/alpine', '3', makeImage());
  const config = {
    upstreams: [hub.config()],
    redis: { url: REDIS_URL, keyPrefix },
    push: { overlay: ['library/alpine'], immutableTags: ['team/**:v*', '**:sha256-*', 'library/alpine:pinned'] },
    auth: {
      htpasswd,
      rules: [{ repositories: ['team/**', 'library/alpine'], users: ['alice'], actions: ['pull', 'push', 'delete', 'overlay'] }],
    },
  };
  const dataDir = join(dir.path, 'data');
  [a, b] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await hub?.stop();
  await dir?.cleanup();
  await deleteKeys(REDIS_URL, keyPrefix);
});

async function push(w: WharfProcess, ref: string, img: TestImage): Promise<void> {
  const src = await tempDir('wharf-immutable-src-');
  try {
    await copy(await writeOciLayout(src.path, 'x', img), `docker://${w.host}/${ref}`, { destCreds: CREDS });
  } finally {
    await src.cleanup();
  }
}

function del(w: WharfProcess, repo: string, ref: string): Promise<HttpResponse> {
  return new RegistrySession(ALICE).request(`${w.url}/v2/${repo}/manifests/${ref}`, { method: 'DELETE' });
}

function assertDenied(res: HttpResponse, rule: string, what: string): void {
  assert.equal(res.status, 403, `${what}: ${describeResponse(res)}`);
  assert.deepEqual(errorCodes(res), ['DENIED'], what);
  assert.ok(res.body.toString('utf8').includes(rule), `${what}: the answer names the rule ${rule}: ${res.body.toString('utf8')}`);
}

describe('push.immutableTags', () => {
  const v1 = makeImage();
  const other = makeImage();

  it('a matching tag is pushed once; the same digest again is accepted on any replica, another digest is 403 DENIED naming the rule', async () => {
    await push(a, 'team/app:v1', v1);
    await push(b, 'team/app:v1', v1); // a client retry: same digest
    await assert.rejects(push(b, 'team/app:v1', other), /immutable.*team\/\*\*:v\*/s, 'skopeo sees the refusal');
    const raw = await new RegistrySession(ALICE).request(`${a.url}/v2/team/app/manifests/v1`, {
      method: 'PUT',
      headers: { 'content-type': other.mediaType },
      body: other.manifest,
    });
    assertDenied(raw, 'team/**:v*', 'moving v1 on replica a');
    for (const w of [a, b]) assert.deepEqual(await inspectRaw(`docker://${w.host}/team/app:v1`, { creds: CREDS }), v1.manifest, 'v1 still points at its first image');

    await push(a, 'team/app:latest', v1);
    await push(b, 'team/app:latest', other);
    assert.deepEqual(await inspectRaw(`docker://${a.host}/team/app:latest`, { creds: CREDS }), other.manifest, 'tags outside the rules still move');
    await push(b, 'team/app:sha256-1234', other);
    await assert.rejects(push(a, 'team/app:sha256-1234', v1), /immutable/, 'the **:sha256-* rule');
  });

  it('DELETE of an immutable tag, or of the manifest it points at, is refused; other tags delete as before', async () => {
    assertDenied(await del(b, 'team/app', 'v1'), 'team/**:v*', 'DELETE of the tag');
    assertDenied(await del(a, 'team/app', v1.manifestDigest), 'team/**:v*', 'DELETE of the manifest v1 points at');
    assert.deepEqual(await inspectRaw(`docker://${b.host}/team/app:v1`, { creds: CREDS }), v1.manifest);

    await push(a, 'team/app:scratch', makeImage());
    const res = await del(b, 'team/app', 'scratch');
    assert.equal(res.status, 202, `a mutable tag deletes: ${describeResponse(res)}`);
  });

  it('two replicas racing the first push of a new immutable tag: exactly one wins, and the tag stays its', async () => {
    const [x, y] = [makeImage(), makeImage()];
    await push(a, 'team/race:base-x', x); // blobs and manifests in place, so the race is the tag write alone
    await push(b, 'team/race:base-y', y);
    const [sa, sb] = [new RegistrySession(ALICE), new RegistrySession(ALICE)];
    const put = (s: RegistrySession, w: WharfProcess, tag: string, img: TestImage): Promise<HttpResponse> =>
      s.request(`${w.url}/v2/team/race/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': img.mediaType }, body: img.manifest });
    await put(sa, a, 'base-x', x); // each session holds its token before the race starts
    await put(sb, b, 'base-y', y);
    for (let i = 0; i < 12; i++) {
      const tag = `v-race-${i}`;
      const [ra, rb] = await Promise.all([put(sa, a, tag, x), put(sb, b, tag, y)]);
      const won = [ra, rb].filter((r) => r.status === 201).length;
      assert.equal(won, 1, `${tag}: exactly one push wins (${ra.status}, ${rb.status})`);
      const loser = ra.status === 201 ? rb : ra;
      assertDenied(loser, 'team/**:v*', `${tag}: the other is refused`);
      const winner = ra.status === 201 ? x : y;
      for (const w of [a, b]) assert.deepEqual(await inspectRaw(`docker://${w.host}/team/race:${tag}`, { creds: CREDS }), winner.manifest, `${tag} points at the winner`);
    }
  });

  it('holds for overlay tags over a mirrored repository', async () => {
    await inspectRaw(`docker://${a.host}/alpine:3`); // mirrored content first: library/alpine is an overlay
    const pinned = makeImage();
    await push(a, 'alpine:pinned', pinned);
    await assert.rejects(push(b, 'alpine:pinned', makeImage()), /immutable.*library\/alpine:pinned/s);
    assertDenied(await del(b, 'library/alpine', 'pinned'), 'library/alpine:pinned', 'DELETE of the overlay tag');
    assert.deepEqual(await inspectRaw(`docker://${b.host}/alpine:pinned`), pinned.manifest);
  });
});
