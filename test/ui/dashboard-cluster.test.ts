/**
 * The dashboard's most pulled repositories are the cluster's: two replicas sharing Redis (and the data
 * directory) against a Distribution upstream, pulls spread over both, each replica shows the same sums once
 * the counts are written (every 5 s). Open registry (no auth): the figures are open too.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { manifestAccept, request } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

let registry: RegistryProcess;
let shared: TempDir;
let a: WharfProcess;
let b: WharfProcess;
const keyPrefix = testPrefix();

before(async () => {
  registry = await startRegistry();
  for (const repo of ['library/alpine', 'library/busybox']) await pushImage(registry.url, repo, '1', makeImage({ layers: 1 }));
  shared = await tempDir('wharf-dash-cluster-');
  const config = { upstreams: [{ name: 'hub', url: registry.url, default: true }], redis: { url: REDIS_URL, keyPrefix } };
  const dataDir = `${shared.path}/data`;
  [a, b] = await Promise.all([startWharf({ config, dataDir }), startWharf({ config, dataDir })]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await registry?.stop();
  await shared?.cleanup();
  await deleteKeys(REDIS_URL, keyPrefix);
});

async function pull(w: WharfProcess, repo: string): Promise<void> {
  const r = await request(`${w.url}/v2/${repo}/manifests/1`, { headers: { accept: manifestAccept } });
  assert.equal(r.status, 200, r.body.toString());
}

type Top = { hour: Array<{ repository: string; pulls: number }>; day: Array<{ repository: string; pulls: number }> };

async function top(w: WharfProcess): Promise<Top> {
  const r = await request(`${w.url}/_wharf/api/stats`);
  assert.equal(r.status, 200, r.body.toString());
  return (JSON.parse(r.body.toString('utf8')) as { topPulls: Top }).topPulls;
}

describe('top pulls across replicas', () => {
  it('every replica shows the pulls made on all of them', async () => {
    await pull(a, 'library/alpine');
    await pull(a, 'library/alpine');
    await pull(b, 'library/alpine');
    await pull(b, 'library/busybox');
    const want = [
      { repository: 'library/alpine', pulls: 3 },
      { repository: 'library/busybox', pulls: 1 },
    ];
    for (const w of [a, b]) {
      let got: Top = await top(w);
      // Each window's stored sums are re-read at most every 3 s, each on its own clock: wait for both.
      const current = (t: Top) => JSON.stringify(t.hour) === JSON.stringify(want) && JSON.stringify(t.day) === JSON.stringify(want);
      for (let i = 0; i < 150 && !current(got); i++) {
        await new Promise((r) => setTimeout(r, 100));
        got = await top(w);
      }
      assert.deepEqual(got.hour, want, `replica ${w.url}, the hour`);
      assert.deepEqual(got.day, want, `replica ${w.url}, the day`);
    }
  });
});
