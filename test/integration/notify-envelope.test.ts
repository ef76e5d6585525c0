/**
 * Webhooks: wharf's envelope compared field by field with what a real Distribution 2.8 sends for the
 * same operations (both POST to real receivers on loopback), and Portus's way of reading them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { RegistrySession, manifestAccept, type Credentials } from '../helpers/http.js';
import { makeImage, pushImage, type TestImage } from '../helpers/oci-image.js';
import { htpasswdFile, startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

const USER: Credentials = { username: 'alice', password: 'alice-secret' };
const REPO = 'team/app';
const OTHER = 'team/other';

/** The same operations against any registry; each step's events are waited for, so order is known. */
async function scenario(base: string, img: TestImage, rx: WebhookReceiver): Promise<void> {
  const s = new RegistrySession(USER, `repository:${REPO}:pull,push,delete repository:${OTHER}:pull,push`);
  const step = async (n: number, what: string, run: () => Promise<void>) => {
    const before = rx.events().length;
    await run();
    await rx.waitFor((e) => e.length >= before + n, 30_000, what);
  };
  await step(4, 'push', () => pushImage(base, REPO, 'v1', img, USER));
  await step(1, 'manifest GET by tag', async () => {
    assert.equal((await s.request(`${base}/v2/${REPO}/manifests/v1`, { headers: { accept: manifestAccept } })).status, 200);
  });
  await step(1, 'manifest HEAD by digest', async () => {
    assert.equal((await s.request(`${base}/v2/${REPO}/manifests/${img.manifestDigest}`, { method: 'HEAD', headers: { accept: manifestAccept } })).status, 200);
  });
  const layer = img.layers[0]!.digest;
  await step(1, 'blob GET', async () => {
    assert.equal((await s.request(`${base}/v2/${REPO}/blobs/${layer}`)).status, 200);
  });
  await step(1, 'blob HEAD', async () => {
    assert.equal((await s.request(`${base}/v2/${REPO}/blobs/${layer}`, { method: 'HEAD' })).status, 200);
  });
  await step(1, 'mount', async () => {
    assert.equal((await s.request(`${base}/v2/${OTHER}/blobs/uploads/?mount=${layer}&from=${REPO}`, { method: 'POST', body: '' })).status, 201);
  });
  await step(2, 'manifest DELETE', async () => {
    assert.equal((await s.request(`${base}/v2/${REPO}/manifests/${img.manifestDigest}`, { method: 'DELETE' })).status, 202);
  });
  await step(1, 'blob DELETE', async () => {
    assert.equal((await s.request(`${base}/v2/${REPO}/blobs/${layer}`, { method: 'DELETE' })).status, 202);
  });
}

/** Values that differ by nature between two servers (ids, times, ports) become their shape. */
function normalise(e: Record<string, any>, base: string): Record<string, any> {
  const c = structuredClone(e);
  assert.match(c.id, /^[0-9a-f-]{36}$/);
  assert.ok(!Number.isNaN(Date.parse(c.timestamp)) && c.timestamp.endsWith('Z'), `timestamp ${c.timestamp}`);
  c.id = '<uuid>';
  c.timestamp = '<time>';
  assert.match(c.request.id, /.+/);
  c.request.id = '<request-id>';
  assert.match(c.request.addr, /^127\.0\.0\.1:\d+$/);
  c.request.addr = '<client>';
  assert.equal(c.request.host, new URL(base).host);
  c.request.host = '<host>';
  if (c.target.url !== undefined) {
    assert.ok(c.target.url.startsWith(`${base}/v2/`), c.target.url);
    c.target.url = c.target.url.slice(base.length);
  }
  assert.match(c.source.addr, /:\d+$/);
  assert.match(c.source.instanceID, /^[0-9a-f-]{36}$/);
  c.source = '<source>';
  return c;
}

describe('notifications: the envelope Distribution 2.8 sends', () => {
  let dir: TempDir;
  let dist: RegistryProcess;
  let w: WharfProcess;
  let distRx: WebhookReceiver;
  let wharfRx: WebhookReceiver;

  before(async () => {
    dir = await tempDir('wharf-notify-');
    distRx = await startReceiver();
    wharfRx = await startReceiver();
    const endpoint = (url: string) => ({ name: 'hook', url, timeout: '2s', threshold: 3, backoff: '100ms', headers: { Authorization: ['Bearer abc'] } });
    dist = await startRegistry({
      auth: { kind: 'htpasswd', users: { [USER.username]: USER.password } },
      notifications: { events: { includereferences: true }, endpoints: [endpoint(distRx.url)] },
    });
    const htpasswd = join(dir.path, 'htpasswd');
    await htpasswdFile(htpasswd, { [USER.username]: USER.password });
    w = await startWharf({
      config: {
        upstreams: [],
        auth: { htpasswd, anonymousPull: false, rules: [{ repositories: ['**'], users: ['*'], actions: ['pull', 'push', 'delete'] }] },
        notifications: { events: { includereferences: true }, endpoints: [endpoint(wharfRx.url)] },
      },
    });
  });
  after(async () => {
    await w?.stop();
    await dist?.stop();
    await distRx?.stop();
    await wharfRx?.stop();
    await dir?.cleanup();
  });

  it('sends the same events, field by field, for push, pull, mount and delete', async () => {
    const img = makeImage({ format: 'docker' });
    await scenario(dist.url, img, distRx);
    await scenario(w.url, img, wharfRx);
    const want = distRx.events().map((e) => normalise(e, dist.url));
    const got = wharfRx.events().map((e) => normalise(e, w.url));
    assert.equal(got.length, want.length, `event count: ${JSON.stringify(got.map((e) => e.action))}`);
    for (let i = 0; i < want.length; i++) assert.deepEqual(got[i], want[i], `event ${i} (${want[i]!.action})`);
  });

  it('sends Distribution\'s headers: the events media type and the static headers', () => {
    for (const d of wharfRx.deliveries) {
      assert.equal(d.headers['content-type'], 'application/vnd.docker.distribution.events.v1+json');
      assert.equal(d.headers.authorization, 'Bearer abc');
    }
    assert.ok(wharfRx.deliveries.length > 0);
  });

  it('gives Portus what it reads: manifest events with request.host, actor.name, repository, tag, digest', async () => {
    const portus = (events: Array<Record<string, any>>) =>
      events
        .filter((e) => e.action === 'push' && String(e.target.mediaType).startsWith('application/vnd.docker.distribution.manifest'))
        .map((e) => ({ host: typeof e.request.host, actor: e.actor.name, repository: e.target.repository, tag: e.target.tag, digest: e.target.digest }));
    const got = portus(wharfRx.events());
    assert.deepEqual(got, portus(distRx.events()));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.actor, USER.username);
    assert.equal(got[0]!.tag, 'v1');
  });
});
