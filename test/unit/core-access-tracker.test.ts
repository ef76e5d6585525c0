import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf, type Digest } from '../../src/oci/index.js';
import { AccessTracker } from '../../src/core/access-tracker.js';
import { EmbeddedMetadataStore } from '../../src/store/meta/embedded.js';
import type { AccessIndex } from '../../src/store/types.js';

type T = { after(fn: () => unknown): void };

/** The real embedded store, with every recordAccess batch it receives kept for inspection. */
async function recordingStore(t: T) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-access-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const meta = await EmbeddedMetadataStore.open(dir);
  t.after(() => meta.close());
  const batches: Array<Map<Digest, number>> = [];
  let failNext = 0;
  const index: AccessIndex = {
    recordAccess: async (times) => {
      if (failNext > 0) {
        failNext--;
        throw new Error('metadata store unavailable');
      }
      batches.push(new Map(times));
      await meta.recordAccess(times);
    },
    lastAccess: (d) => meta.lastAccess(d),
    forgetAccess: (d) => meta.forgetAccess(d),
  };
  return { meta, index, batches, failNextFlush: () => void failNext++ };
}

/** A timer the test fires by hand. */
function manualTimer() {
  const timers = new Set<() => void>();
  return {
    setInterval: (fn: () => void) => {
      timers.add(fn);
      return fn;
    },
    clearInterval: (h: unknown) => void timers.delete(h as () => void),
    fire: () => timers.forEach((fn) => fn()),
    get count() {
      return timers.size;
    },
  };
}

const a = digestOf('a');
const b = digestOf('b');

describe('AccessTracker', () => {
  it('turns many touches into one recordAccess carrying the latest time per digest', async (t) => {
    const s = await recordingStore(t);
    let clock = 1_000;
    const timer = manualTimer();
    const tracker = new AccessTracker(s.index, { flushIntervalMs: 5_000, now: () => clock, ...timer });
    for (let i = 0; i < 100; i++) {
      clock += 10;
      tracker.touch(i % 2 === 0 ? a : b);
    }
    assert.equal(s.batches.length, 0, 'touch writes nothing by itself');
    assert.equal(await s.meta.lastAccess(a), undefined);

    await tracker.flush();
    assert.equal(s.batches.length, 1);
    assert.deepEqual([...s.batches[0]!].sort(), [[a, 1_990], [b, 2_000]].sort());
    assert.equal(await s.meta.lastAccess(a), 1_990);
    assert.equal(await s.meta.lastAccess(b), 2_000);

    await tracker.flush();
    assert.equal(s.batches.length, 1, 'nothing touched since: no write');
    await tracker.close();
  });

  it('flushes on its interval and stops on close, writing what is pending', async (t) => {
    const s = await recordingStore(t);
    let clock = 50;
    const timer = manualTimer();
    const tracker = new AccessTracker(s.index, { flushIntervalMs: 1_000, now: () => clock, ...timer });
    tracker.touch(a);
    timer.fire();
    await tracker.flush(); // waits for the timer's flush to finish
    assert.equal(await s.meta.lastAccess(a), 50);

    clock = 70;
    tracker.touch(b);
    await tracker.close();
    assert.equal(timer.count, 0, 'interval cleared');
    assert.equal(await s.meta.lastAccess(b), 70);
    tracker.touch(a);
    assert.equal(tracker.pendingCount, 0, 'touches after close are ignored');
  });

  it('keeps a failed batch for the next flush, never moving a time backwards', async (t) => {
    const s = await recordingStore(t);
    let clock = 10;
    const errors: unknown[] = [];
    const timer = manualTimer();
    const tracker = new AccessTracker(s.index, { flushIntervalMs: 1_000, now: () => clock, onError: (e) => errors.push(e), ...timer });
    tracker.touch(a);
    tracker.touch(b);
    s.failNextFlush();
    await assert.rejects(tracker.flush(), /unavailable/);
    assert.equal(tracker.pendingCount, 2);
    assert.equal(tracker.peek(a), 10);

    clock = 20;
    tracker.touch(a);
    s.failNextFlush();
    timer.fire();
    await tracker.flush().catch(() => undefined);
    // The timer's failure was reported, then the explicit flush wrote the merged batch.
    assert.equal(errors.length, 1);
    assert.equal(await s.meta.lastAccess(a), 20);
    assert.equal(await s.meta.lastAccess(b), 10);
    assert.equal(tracker.pendingCount, 0);
    await tracker.close();
  });

  it('still answers peek for a batch the store has not finished writing (an eviction pass in between)', async () => {
    // A store whose write the test holds open, as a slow Redis or a journal fsync would.
    let release!: () => void;
    let held = false;
    const stored = new Map<Digest, number>();
    const index: AccessIndex = {
      recordAccess: async (times) => {
        if (!held) {
          held = true;
          await new Promise<void>((r) => (release = r));
        }
        for (const [d, t] of times) stored.set(d, t);
      },
      lastAccess: async (d) => stored.get(d),
      forgetAccess: async (d) => void stored.delete(d),
    };
    let clock = 100;
    const tracker = new AccessTracker(index, { flushIntervalMs: 1_000, now: () => clock, ...manualTimer() });
    tracker.touch(a);
    const flushing = tracker.flush();
    await new Promise((r) => setImmediate(r));
    assert.equal(stored.get(a), undefined, 'the write is still open');
    assert.equal(tracker.peek(a), 100, 'the time being written is still visible');
    clock = 150;
    tracker.touch(a);
    assert.equal(tracker.peek(a), 150, 'a newer touch wins over the batch being written');
    release();
    await flushing;
    assert.equal(stored.get(a), 100);
    assert.equal(tracker.peek(a), 150);
    await tracker.close();
  });
});
