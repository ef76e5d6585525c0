/**
 * PullCounter on the real in-memory pull buckets (the embedded store's), with a store that can be made to
 * fail: what counts as a pull, the windows, flushing without losing or doubling counts, the bounds.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference } from '../../src/oci/index.js';
import { PullCounter } from '../../src/core/pull-counter.js';
import { PullBuckets } from '../../src/store/meta/pull-buckets.js';
import type { PullIndex } from '../../src/store/types.js';
import type { RepoRef } from '../../src/core/types.js';
import { makeImage, makeMultiPlatform } from '../helpers/oci-image.js';

const repo = (key: string): RepoRef => ({ key, path: key });
const all = () => true;

function subject(start = Date.UTC(2026, 0, 1, 12, 0, 0)) {
  let t = start;
  const buckets = new PullBuckets(() => t);
  let failing = 0;
  const writes: string[] = [];
  const store: PullIndex = {
    countPulls: async (b, counts, ttl, cap) => {
      if (failing > 0) {
        failing--;
        throw new Error('metadata store unavailable');
      }
      writes.push(b);
      await buckets.countPulls(b, counts, ttl, cap);
    },
    pullCounts: (b) => buckets.pullCounts(b),
  };
  const counter = new PullCounter(store, { flushIntervalMs: 1_000_000, now: () => t, setInterval: () => 0, clearInterval: () => {} });
  return { counter, writes, advance: (ms: number) => void (t += ms), failNext: (n = 1) => void (failing = n) };
}

describe('PullCounter', () => {
  it('counts a GET of a single-platform manifest, and a multi-platform pull once', async () => {
    const { counter } = subject();
    const img = makeImage();
    const multi = makeMultiPlatform();
    counter.pulled(repo('hub/a'), parseReference('1'), { descriptor: { mediaType: img.mediaType, digest: img.manifestDigest as never, size: img.manifest.length }, bytes: img.manifest });
    counter.pulled(repo('hub/a'), parseReference(img.manifestDigest), { descriptor: { mediaType: img.mediaType, digest: img.manifestDigest as never, size: img.manifest.length }, bytes: img.manifest });
    const child = multi.images[1]!;
    counter.pulled(repo('hub/m'), parseReference('1'), { descriptor: { mediaType: multi.mediaType, digest: multi.digest as never, size: multi.bytes.length }, bytes: multi.bytes });
    counter.pulled(repo('hub/m'), parseReference(child.manifestDigest), { descriptor: { mediaType: child.mediaType, digest: child.manifestDigest as never, size: child.manifest.length }, bytes: child.manifest });
    // The same platform manifest under another repository is that repository's own pull.
    counter.pulled(repo('hub/other'), parseReference(child.manifestDigest), { descriptor: { mediaType: child.mediaType, digest: child.manifestDigest as never, size: child.manifest.length }, bytes: child.manifest });
    assert.deepEqual(await counter.top('hour', 10, all), [
      { key: 'hub/a', pulls: 2 },
      { key: 'hub/m', pulls: 1 },
      { key: 'hub/other', pulls: 1 },
    ]);
  });

  it('keeps the same figures across flushes, and a failed flush loses nothing', async () => {
    const s = subject();
    const img = makeImage();
    const pull = (key: string) => s.counter.pulled(repo(key), parseReference('1'), { descriptor: { mediaType: img.mediaType, digest: img.manifestDigest as never, size: 1 }, bytes: img.manifest });
    pull('x');
    pull('x');
    s.failNext();
    await assert.rejects(s.counter.flush());
    assert.deepEqual(await s.counter.top('day', 10, all), [{ key: 'x', pulls: 2 }], 'merged back after the failure');
    s.advance(61_000);
    pull('x');
    pull('y');
    await s.counter.flush();
    assert.deepEqual(s.writes.sort(), [`h:${Math.floor(Date.UTC(2026, 0, 1, 12) / 3_600_000)}`, `m:${Math.floor(Date.UTC(2026, 0, 1, 12) / 60_000)}`, `m:${Math.floor(Date.UTC(2026, 0, 1, 12) / 60_000) + 1}`].sort());
    assert.deepEqual(await s.counter.top('hour', 10, all), [{ key: 'x', pulls: 3 }, { key: 'y', pulls: 1 }]);
    await s.counter.flush(); // nothing pending: nothing written twice
    assert.deepEqual(await s.counter.top('day', 10, all), [{ key: 'x', pulls: 3 }, { key: 'y', pulls: 1 }]);
  });

  it('the hour forgets what is older than 60 minutes; the day keeps it', async () => {
    const s = subject();
    const img = makeImage();
    s.counter.pulled(repo('old'), parseReference('1'), { descriptor: { mediaType: img.mediaType, digest: img.manifestDigest as never, size: 1 }, bytes: img.manifest });
    await s.counter.flush();
    s.advance(61 * 60_000);
    s.counter.pulled(repo('new'), parseReference('1'), { descriptor: { mediaType: img.mediaType, digest: img.manifestDigest as never, size: 1 }, bytes: img.manifest });
    assert.deepEqual(await s.counter.top('hour', 10, all), [{ key: 'new', pulls: 1 }]);
    assert.deepEqual(await s.counter.top('day', 10, all), [{ key: 'new', pulls: 1 }, { key: 'old', pulls: 1 }]);
    s.advance(25 * 3_600_000);
    assert.deepEqual(await s.counter.top('day', 10, all), [], 'a day later: the written bucket expired, the pending minute is out of the window');
    await s.counter.flush();
    assert.deepEqual(s.writes.filter((w) => w.startsWith('m:')).length, 1, 'counts older than the day are dropped, not written into new buckets');
  });

  it('lists only what `visible` allows, at most `limit`', async () => {
    const s = subject();
    const img = makeImage();
    for (const key of ['a', 'b', 'c', 'secret']) s.counter.pulled(repo(key), parseReference('1'), { descriptor: { mediaType: img.mediaType, digest: img.manifestDigest as never, size: 1 }, bytes: img.manifest });
    assert.deepEqual(await s.counter.top('hour', 2, (k) => k !== 'secret'), [{ key: 'a', pulls: 1 }, { key: 'b', pulls: 1 }]);
  });
});
