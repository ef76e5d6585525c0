/**
 * Docker Hub's pull quota, probed instead of slept on: a real Distribution 2.8 upstream behind a fake quota
 * proxy (the counting fault proxy with Docker Hub's answers injected: while "exhausted" every manifest GET is
 * `429` with `ratelimit-remaining: 0;w=21600`, every other answer carries that reading; once "refilled" every
 * answer carries `ratelimit-remaining: 99;w=21600`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { getManifest, sleep, startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage } from '../helpers/oci-image.js';
import { describeResponse, rawHead, type WharfProcess } from '../helpers/wharf.js';

const PROBE_S = 2;
const MANIFEST_GET = { method: 'GET', path: /\/manifests\// };
const EXHAUSTED = { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600' };

let up: MirrorUpstream;
let w: WharfProcess;
const images = { a: makeImage({ layers: 1 }), b: makeImage({ layers: 1 }), c: makeImage({ layers: 1 }) };

/** The fake quota proxy's two states. */
function exhaust(): void {
  up.proxy.clearFaults();
  up.proxy.inject({ match: MANIFEST_GET, action: { kind: 'status', status: 429, headers: EXHAUSTED, body: '{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}' } });
  up.proxy.inject({ match: {}, action: { kind: 'headers', headers: EXHAUSTED } });
}
function refill(): void {
  up.proxy.clearFaults();
  up.proxy.inject({ match: {}, action: { kind: 'headers', headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '99;w=21600' } } });
}

async function metric(name: string, labels: string): Promise<number | undefined> {
  const text = (await request(`${w.url}/metrics`)).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

before(async () => {
  up = await startHubUpstream({ tagFreshness: '1h' });
  for (const [name, img] of Object.entries(images)) await up.push(`quota/${name}`, 'v1', img);
  w = await startMirror([up.config({ quotaProbeInterval: `${PROBE_S}s` })]);
});
after(async () => {
  await w?.stop();
  await up?.stop();
});

describe('quota: probe, do not sleep for the whole window', () => {
  it('holds uncached pulls with no upstream GET, answers HEAD of an uncached tag through an upstream HEAD, and lifts the hold within one probe interval of the refill', async () => {
    exhaust();
    const first = await getManifest(w, 'quota/a', 'v1');
    assert.equal(first.status, 429, describeResponse(first));
    up.proxy.reset();

    // Held: a few probe intervals of retries, each refused locally.
    const heldUntil = Date.now() + (PROBE_S * 2 + 1) * 1000;
    let refusals = 0;
    while (Date.now() < heldUntil) {
      const res = await getManifest(w, 'quota/b', 'v1');
      assert.equal(res.status, 429, describeResponse(res));
      const ra = Number(res.headers['retry-after']);
      assert.ok(ra >= 1 && ra <= PROBE_S, `Retry-After is the time to the next probe, not the 6 h window: ${ra}`);
      refusals++;
      await sleep(200);
    }
    assert.ok(refusals >= 5);
    assert.equal(up.proxy.count(MANIFEST_GET), 0, 'no upstream manifest GET while held');
    const probes = up.proxy.count({ method: 'HEAD', path: /\/manifests\// });
    const elapsed = (PROBE_S * 2 + 1) / PROBE_S;
    assert.ok(probes >= 1 && probes <= Math.ceil(elapsed) + 1, `at most one probe HEAD per ${PROBE_S}s: ${probes}`);
    assert.equal(await metric('wharf_upstream_quota_held', 'upstream="docker.io"'), 1);

    // A Swarm manager resolving an uncached tag while held: answered from an upstream HEAD.
    const head = await rawHead(w, '/v2/quota/c/manifests/v1', { accept: images.c.mediaType });
    assert.equal(head.status, 200, describeResponse(head));
    assert.equal(head.headers['docker-content-digest'], images.c.manifestDigest);
    assert.equal(up.proxy.count(MANIFEST_GET), 0, 'the HEAD cost no GET');

    refill();
    const refilledAt = Date.now();
    let res: HttpResponse | undefined;
    for (let i = 0; i < 200; i++) {
      res = await getManifest(w, 'quota/b', 'v1');
      if (res.status === 200) break;
      assert.equal(res.status, 429, describeResponse(res));
      await sleep(100);
    }
    const took = Date.now() - refilledAt;
    assert.equal(res?.status, 200, res && describeResponse(res));
    // one probe interval, plus the request that notices (a loaded machine gets one more second)
    assert.ok(took <= PROBE_S * 1000 + 1000, `pulls work again ${took} ms after the refill`);
    assert.equal(await metric('wharf_upstream_quota_held', 'upstream="docker.io"'), 0);
    assert.ok(((await metric('wharf_upstream_quota_probes_total', 'upstream="docker.io",result="open"')) ?? 0) >= 1);
    assert.equal(await metric('wharf_upstream_ratelimit_remaining', 'upstream="docker.io"'), 99);
  });

  it('a 429 with Retry-After is honoured exactly: nothing before it, a GET right after it', async () => {
    up.proxy.clearFaults();
    up.proxy.inject({ match: MANIFEST_GET, times: 1, action: { kind: 'status', status: 429, headers: { 'retry-after': '3' } } });
    const first = await getManifest(w, 'quota/a', 'v1');
    const at = Date.now();
    assert.equal(first.status, 429, describeResponse(first));
    assert.equal(first.headers['retry-after'], '3');
    up.proxy.reset();
    let res: HttpResponse | undefined;
    for (let i = 0; i < 100; i++) {
      res = await getManifest(w, 'quota/a', 'v1');
      if (res.status === 200) break;
      assert.equal(up.proxy.count(MANIFEST_GET), 0, 'no GET before Retry-After');
      await sleep(100);
    }
    const took = Date.now() - at;
    assert.equal(res?.status, 200, res && describeResponse(res));
    assert.ok(took >= 2900 && took <= 3000 + 1500, `held ${took} ms for Retry-After: 3`);
  });
});
