/**
 * The cluster's shared quota: two replicas sharing Redis and a data dir in front of a real Distribution 2.8
 * upstream behind a fake quota proxy (the counting fault proxy answering as Docker Hub does when the pull
 * quota is exhausted: manifest GETs `429` with `ratelimit-remaining: 0;w=21600`, the reading on every answer).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { getManifest, startHubUpstream, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage } from '../helpers/oci-image.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { deleteKeys, REDIS_URL, sleep, testPrefix } from './cluster-helpers.js';

const PROBE_S = 2;
const MANIFEST_GET = { method: 'GET', path: /\/manifests\// };
const reading = (remaining: number) => ({ 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': `${remaining};w=21600` });

let up: MirrorUpstream;
let shared: TempDir;
let a: WharfProcess;
let b: WharfProcess;
const keyPrefix = testPrefix();
const images = { a: makeImage({ layers: 1 }), b: makeImage({ layers: 1 }), c: makeImage({ layers: 1 }) };

async function metric(w: WharfProcess, name: string): Promise<number | undefined> {
  const text = (await request(`${w.url}/metrics`)).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{upstream="docker.io"}`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

before(async () => {
  up = await startHubUpstream({ tagFreshness: '1h' });
  for (const [name, img] of Object.entries(images)) await up.push(`quota/${name}`, 'v1', img);
  shared = await tempDir('wharf-quota-');
  const config = { upstreams: [up.config({ quotaProbeInterval: `${PROBE_S}s` })], redis: { url: REDIS_URL, keyPrefix }, log: { level: 'info' } };
  [a, b] = await Promise.all([startWharf({ config, dataDir: `${shared.path}/data` }), startWharf({ config, dataDir: `${shared.path}/data` })]);
});
after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await up?.stop();
  await shared?.cleanup();
  await deleteKeys(REDIS_URL, keyPrefix);
});

describe('the cluster shares one quota', () => {
  it('one replica learns the quota is exhausted: both hold with zero upstream GETs, probe once per interval between them, report the same figure, and resume together', async () => {
    up.proxy.inject({ match: MANIFEST_GET, action: { kind: 'status', status: 429, headers: reading(0) } });
    up.proxy.inject({ match: {}, action: { kind: 'headers', headers: reading(0) } });
    const first = await getManifest(a, 'quota/a', 'v1');
    assert.equal(first.status, 429, describeResponse(first));
    // B never asked the upstream, yet reports the cluster's figure.
    assert.equal(await metric(b, 'wharf_upstream_ratelimit_remaining'), 0);
    assert.equal(await metric(b, 'wharf_upstream_quota_held'), 1);

    up.proxy.reset();
    const heldMs = (PROBE_S * 2 + 1) * 1000;
    const until = Date.now() + heldMs;
    for (let i = 0; Date.now() < until; i++) {
      const res = await getManifest(i % 2 === 0 ? a : b, 'quota/b', 'v1');
      assert.equal(res.status, 429, describeResponse(res));
      await sleep(150);
    }
    assert.equal(up.proxy.count(MANIFEST_GET), 0, 'no upstream manifest GET from either replica while held');
    const probes = up.proxy.count({ method: 'HEAD', path: /\/manifests\// });
    assert.ok(probes >= 1 && probes <= Math.ceil(heldMs / 1000 / PROBE_S) + 1, `one probe per ${PROBE_S}s for the whole cluster: ${probes}`);

    up.proxy.clearFaults();
    up.proxy.inject({ match: {}, action: { kind: 'headers', headers: reading(99) } });
    const refilledAt = Date.now();
    let res: HttpResponse | undefined;
    for (let i = 0; i < 200; i++) {
      res = await getManifest(i % 2 === 0 ? a : b, 'quota/b', 'v1');
      if (res.status === 200) break;
      await sleep(100);
    }
    assert.equal(res?.status, 200, res && describeResponse(res));
    assert.ok(Date.now() - refilledAt <= PROBE_S * 1000 + 1000, `pulls work again ${Date.now() - refilledAt} ms after the refill`);
    // the other replica needs no probe of its own
    for (const w of [a, b]) {
      const c = await getManifest(w, 'quota/c', 'v1');
      assert.equal(c.status, 200, describeResponse(c));
      assert.equal(await metric(w, 'wharf_upstream_quota_held'), 0);
      assert.equal(await metric(w, 'wharf_upstream_ratelimit_remaining'), 99);
    }
  });
});
