/**
 * What one replica trusts from shared state (issue 16 items 2 and 3): two wharf processes on one real Redis
 * and one data directory, a real Distribution registry upstream, racing requests over raw sockets.
 * - An upload session written from two replicas at once never publishes bytes under a digest they do not have.
 * - A blob another replica is downloading for one repository is not served under another one its upstream
 *   does not vouch for.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { basicHeader, manifestAccept, request, type Credentials } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { rawRequest, type RawAnswer, type RawRequest } from '../helpers/raw-http.js';
import { htpasswdFile, startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { blobStored, onS3, storedBytes } from '../helpers/test-storage.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { deleteKeys, REDIS_URL, sleep, startThrottle, testPrefix, type Throttle } from './cluster-helpers.js';

const ALICE: Credentials = { username: 'alice', password: 'alice-secret' };

let registry: RegistryProcess;
let proxy: FaultProxy;
let throttle: Throttle;
let shared: TempDir;
let dataDir: string;
let a: WharfProcess;
let b: WharfProcess;
const keyPrefix = testPrefix();

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  // Blob bodies from bad.local arrive slowly (~64 KiB socket chunks every 40 ms): a download stays in flight.
  throttle = await startThrottle(proxy.url, 40);
  shared = await tempDir('wharf-trust-');
  const htpasswd = join(shared.path, 'htpasswd');
  await htpasswdFile(htpasswd, { alice: ALICE.password });
  dataDir = join(shared.path, 'data');
  const config = {
    upstreams: [
      { name: 'hub', url: proxy.url, default: true, tagFreshness: '1h' },
      { name: 'bad', url: throttle.url, aliases: ['bad.local'], tagFreshness: '1h' },
    ],
    redis: { url: REDIS_URL, keyPrefix },
    auth: {
      htpasswd,
      anonymousPull: false,
      rules: [
        { repositories: ['bad.local/**'], users: ['alice'], actions: ['pull'] },
        { repositories: ['library/*', 'team/*'], users: ['anonymous'], actions: ['pull', 'push'] },
      ],
    },
    log: { level: 'info' },
  };
  [a, b] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await throttle?.stop();
  await proxy?.stop();
  await registry?.stop();
  await shared?.cleanup();
  await deleteKeys(REDIS_URL, keyPrefix);
});

/** Polls `cond` every 20 ms for up to `ms`; false when it never held. */
async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (await cond()) return true;
  return false;
}

async function fileStarts(path: string, prefix: Buffer): Promise<boolean> {
  const bytes = await readFile(path).catch(() => Buffer.alloc(0));
  return bytes.length >= prefix.length && bytes.subarray(0, prefix.length).equals(prefix);
}

function patchTo(w: WharfProcess, location: string, bytes: Buffer): Promise<RawRequest> {
  return rawRequest(w.port, 'PATCH', location, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': bytes.length,
    'Content-Range': `0-${bytes.length - 1}`,
  });
}

function show(x: RawAnswer | undefined): string {
  return x ? `HTTP ${x.status} ${JSON.stringify(x.headers)} ${x.body.slice(0, 300)}` : 'no answer';
}

describe('replicas sharing an upload session', () => {
  it('two PATCHes racing on two replicas never publish the loser’s bytes under the winner’s digest', async () => {
    // The winner's bytes are a public mirrored layer: poisoning it would break every pull of the image.
    const img = makeImage({ layers: 1, layerSize: 2 << 20 });
    await pushImage(registry.url, 'library/alpine', '3', img);
    const good = img.layers[0]!.bytes;
    const junk = randomBytes(good.length);
    const half = good.length / 2;

    const start = await request(`${a.url}/v2/team/poison/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202, describeResponse(start));
    const location = new URL(start.headers.location!, a.url).pathname;
    const uuid = start.headers['docker-upload-uuid']!;
    const temp = join(dataDir, 'tmp', uuid);
    // On the filesystem a session's bytes land in tmp/<uuid> as they arrive; on S3 a PATCH becomes a session
    // object only once its body is whole, so there the interleaving is paced by time instead.
    const landed = (prefix: Buffer): Promise<boolean> => (onS3 ? sleep(300).then(() => true) : fileStarts(temp, prefix));

    // Both PATCHes reach their replicas (each has the session open, at offset 0), then the bodies interleave:
    // A's first half, B's first half over it, A's rest (A answers), B's rest over it.
    const onA = await patchTo(a, location, good);
    const onB = await patchTo(b, location, junk);
    // A replica that refuses the second writer answers at once (under load either one may be the second).
    await until(() => onA.answered || onB.answered, 300);
    await onA.send(good.subarray(0, half)).catch(() => undefined);
    await until(() => onA.answered || landed(good.subarray(0, half)));
    await onB.send(junk.subarray(0, half)).catch(() => undefined);
    await until(() => onB.answered || landed(junk.subarray(0, half)), 5000);
    await onA.send(good.subarray(half)).catch(() => undefined);
    const answerA = await onA.answer;
    await onB.send(junk.subarray(half)).catch(() => undefined);
    const answerB = await onB.answer;
    const acked = [
      { w: a, bytes: good, answer: answerA },
      { w: b, bytes: junk, answer: answerB },
    ].filter((x) => x.answer?.status === 202);
    assert.ok(acked.length <= 1, `one PATCH wins at most: A ${show(answerA)}; B ${show(answerB)}`);

    // The winner completes with its digest: either refused, or the bytes published are exactly that digest's.
    const { w: winner, bytes } = acked[0] ?? { w: a, bytes: good };
    const digest = sha256(bytes);
    const put = await request(`${winner.url}${location}?digest=${digest}`, { method: 'PUT' });
    const published = await storedBytes(dataDir, digest);
    if (published) assert.equal(sha256(published), digest, `bytes published under ${digest} (PUT: ${describeResponse(put)})`);
    else assert.notEqual(put.status, 201, `a 201 publishes the blob: ${describeResponse(put)}`);

    // An honest upload of the right bytes goes through, and the mirrored image pulls whole from both replicas.
    const honest = await request(`${b.url}/v2/team/honest/blobs/uploads/?digest=${img.layers[0]!.digest}`, { method: 'POST', body: good });
    assert.equal(honest.status, 201, describeResponse(honest));
    for (const w of [a, b]) {
      const m = await request(`${w.url}/v2/library/alpine/manifests/3`, { headers: { accept: manifestAccept } });
      assert.equal(m.status, 200, describeResponse(m));
      for (const blob of [img.config, ...img.layers]) {
        const res = await request(`${w.url}/v2/library/alpine/blobs/${blob.digest}`);
        assert.equal(res.status, 200, describeResponse(res));
        assert.equal(sha256(res.body), blob.digest, `bytes of ${blob.digest} from ${w.url}`);
      }
    }
  });
});

describe('a download in flight on another replica', () => {
  it('is not served, nor linked, under a repository whose upstream does not have the blob', async () => {
    const img = makeImage({ layers: 1, layerSize: 4 << 20 });
    await pushImage(registry.url, 'secret/app', 'v1', img);
    const layer = img.layers[0]!.digest;
    const alice = { authorization: basicHeader(ALICE) };

    const m = await request(`${a.url}/v2/bad.local/secret/app/manifests/v1`, { headers: { accept: manifestAccept, ...alice } });
    assert.equal(m.status, 200, describeResponse(m));
    // Alice's download runs on replica A (slowly); while it does, an anonymous caller asks replica B.
    const download = request(`${a.url}/v2/bad.local/secret/app/blobs/${layer}`, { headers: alice, timeoutMs: 120_000 });
    assert.ok(await until(() => proxy.count({ method: 'GET', path: `/v2/secret/app/blobs/${layer}` }) > 0), 'A started the download');
    const stolen = await request(`${b.url}/v2/library/x/blobs/${layer}`, { timeoutMs: 120_000 });
    assert.equal(stolen.status, 404, `anonymous read of the private layer through library/x: ${describeResponse(stolen).slice(0, 300)}`);

    const done = await download;
    assert.equal(done.status, 200, describeResponse(done).slice(0, 300));
    assert.equal(sha256(done.body), layer);
    assert.ok(await blobStored(dataDir, layer), 'committed');
    // No link to library/x was left behind: with the layer committed, both replicas still answer 404.
    for (const w of [a, b]) {
      for (const method of ['HEAD', 'GET'] as const) {
        const res = await request(`${w.url}/v2/library/x/blobs/${layer}`, { method });
        assert.equal(res.status, 404, `${method} on ${w.url}: ${describeResponse(res).slice(0, 300)}`);
      }
    }
  });
});
