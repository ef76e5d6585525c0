/**
 * Two wharf replicas on a real Redis Sentinel set-up (one master, one replica, three sentinels): a failover
 * under traffic, first a planned one (SENTINEL FAILOVER) and then a crash of the master (SIGKILL). Pulls keep
 * succeeding through both, and nothing a client saw acknowledged before a failover is lost after it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { manifestAccept, request, type HttpResponse } from '../helpers/http.js';
import { makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { SENTINEL_MASTER, startSentinelSet, type SentinelSet } from '../helpers/redis-sentinel.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { sleep, testPrefix } from './cluster-helpers.js';

let registry: RegistryProcess;
let sentinel: SentinelSet;
let shared: TempDir;
let a: WharfProcess;
let b: WharfProcess;

const mirrored = makeImage({ layers: 2, layerSize: 200_000 });
/** tag → image, every push a client saw acknowledged (201) */
const acknowledged = new Map<string, TestImage>();

before(async () => {
  registry = await startRegistry();
  sentinel = await startSentinelSet();
  shared = await tempDir('wharf-sentinel-cluster-');
  const config = {
    upstreams: [{ name: 'up', url: registry.url, default: true, aliases: ['up.test'], tagFreshness: '1s' }],
    // No url host: the sentinels name the master (the url's host is ignored with sentinels).
    redis: { url: 'redis://127.0.0.1:6379', sentinels: sentinel.sentinels, sentinelName: SENTINEL_MASTER, keyPrefix: testPrefix() },
  };
  const dataDir = `${shared.path}/data`;
  [a, b] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
  await pushImage(registry.url, 'team/mirrored', 'v1', mirrored);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await sentinel?.stop();
  await registry?.stop();
  await shared?.cleanup();
});

const getManifest = (w: WharfProcess, repo: string, ref: string): Promise<HttpResponse> =>
  request(`${w.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: manifestAccept } });

/** A docker-like pull: manifest by tag, then every blob, each checked against its digest. */
async function pull(w: WharfProcess, repo: string, tag: string, img: TestImage): Promise<void> {
  const m = await getManifest(w, repo, tag);
  assert.equal(m.status, 200, `${repo}:${tag} on ${w.url}: ${describeResponse(m)}`);
  assert.equal(sha256(m.body), img.manifestDigest);
  for (const blob of [img.config, ...img.layers]) {
    const res = await request(`${w.url}/v2/${repo}/blobs/${blob.digest}`);
    assert.equal(res.status, 200, `blob of ${repo} on ${w.url}: ${describeResponse(res)}`);
    assert.equal(sha256(res.body), blob.digest);
  }
}

/** Pushes a new local tag through `w`; remembers it once acknowledged. Retries while Redis has no master. */
async function pushLocal(w: WharfProcess, tag: string, deadlineMs: number): Promise<void> {
  const img = makeImage({ layers: 1, layerSize: 1000 });
  for (;;) {
    try {
      await pushImage(w.url, 'team/app', tag, img);
      acknowledged.set(tag, img);
      return;
    } catch (e) {
      if (Date.now() > deadlineMs) throw e;
      await sleep(200);
    }
  }
}

/**
 * Pulls in a loop through both replicas (the local images acknowledged so far, and the mirrored one) until
 * stopped; collects failures.
 */
function traffic(): { stop(): Promise<{ served: number; failures: string[] }> } {
  const images = [...acknowledged];
  let running = true;
  let served = 0;
  const failures: string[] = [];
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const w = i % 2 === 0 ? a : b;
      const [tag, img] = images[i % images.length]!;
      await Promise.all([pull(w, 'team/app', tag, img), pull(w, 'team/mirrored', 'v1', mirrored)]).then(
        () => served++,
        (e: Error) => failures.push(e.message),
      );
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { served, failures };
    },
  };
}

/** Every acknowledged tag is there, with its digest, on both replicas (a pull of each, and the tag list). */
async function assertNothingLost(): Promise<void> {
  for (const w of [a, b]) {
    const list = await request(`${w.url}/v2/team/app/tags/list`);
    assert.equal(list.status, 200, describeResponse(list));
    const tags = (JSON.parse(list.body.toString('utf8')) as { tags: string[] }).tags;
    for (const [tag, img] of acknowledged) {
      assert.ok(tags.includes(tag), `${tag} listed on ${w.url}`);
      await pull(w, 'team/app', tag, img);
    }
  }
}

describe('Redis Sentinel failover under traffic', () => {
  it('a planned failover (SENTINEL FAILOVER): pulls keep succeeding, pushes resume, nothing acknowledged is lost', async () => {
    for (let i = 0; i < 4; i++) await pushLocal(i % 2 === 0 ? a : b, `before-${i}`, Date.now());
    await pull(a, 'team/mirrored', 'v1', mirrored);
    const load = traffic();
    await sleep(500);
    const old = await sentinel.masterPort();
    const now = await sentinel.failover();
    assert.notEqual(now, old);
    // Pushes go to the new master on both replicas, within the sentinels' and the client's reconnect time.
    await pushLocal(a, 'after-planned-a', Date.now() + 20_000);
    await pushLocal(b, 'after-planned-b', Date.now() + 20_000);
    await sleep(500);
    const { served, failures } = await load.stop();
    assert.deepEqual(failures, [], 'no pull failed during the failover');
    assert.ok(served > 0);
    await assertNothingLost();
  });

  it('the master crashes (SIGKILL): the sentinels promote the replica, pulls keep succeeding, nothing acknowledged is lost', async () => {
    for (let i = 0; i < 4; i++) await pushLocal(i % 2 === 0 ? a : b, `before-crash-${i}`, Date.now());
    // Each replica has served every image once, as a mirror in use has: during the failover (no master for a
    // second or two) a replica serves what it knows; an image it never saw waits for the new master.
    for (const w of [a, b]) for (const [tag, img] of acknowledged) await pull(w, 'team/app', tag, img);
    const load = traffic();
    await sleep(300);
    const old = await sentinel.masterPort();
    await pushLocal(a, 'just-before-crash', Date.now());
    await sentinel.kill(old);
    const now = await sentinel.waitNewMaster(old);
    assert.notEqual(now, old);
    await pushLocal(b, 'after-crash-b', Date.now() + 20_000);
    await pushLocal(a, 'after-crash-a', Date.now() + 20_000);
    const { served, failures } = await load.stop();
    assert.deepEqual(failures, [], 'no pull failed during the failover');
    assert.ok(served > 0);
    await assertNothingLost();
  });
});
