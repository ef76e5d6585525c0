import assert from 'node:assert/strict';
import { appendFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { QueuedEvent } from '../../src/notify/envelope.js';
import { Journal } from '../../src/notify/journal.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

function ev(n: number): QueuedEvent {
  return {
    key: 'team/app',
    event: { id: `id-${n}`, timestamp: new Date(0).toISOString(), action: 'push', target: { repository: 'team/app' }, request: {}, actor: {}, source: {} },
  };
}

const ids = async (j: Journal, ep: string, max = 1000) => (await j.read(ep, max)).map((e) => e.q.event.id);

describe('notify journal (embedded queue)', () => {
  let dir: TempDir;
  const dropped: Array<[string, number]> = [];
  const open = (endpoints: Array<{ name: string; maxPending: number }>) => Journal.open({ dir: dir.path, endpoints, now: () => 1000, onDrop: (e, n) => dropped.push([e, n]) });

  beforeEach(async () => {
    dir = await tempDir('wharf-journal-');
    dropped.length = 0;
  });
  afterEach(async () => {
    await dir.cleanup();
  });

  it('keeps what was appended and not acknowledged across a reopen, per endpoint', async () => {
    const j = await open([{ name: 'a', maxPending: 100 }, { name: 'b', maxPending: 100 }]);
    await j.append([ev(1), ev(2), ev(3)]);
    const [first] = await j.read('a', 1);
    await j.ack('a', first!);
    await j.close();
    const again = await open([{ name: 'a', maxPending: 100 }, { name: 'b', maxPending: 100 }]);
    assert.deepEqual(await ids(again, 'a'), ['id-2', 'id-3']);
    assert.deepEqual(await ids(again, 'b'), ['id-1', 'id-2', 'id-3']);
    assert.deepEqual(await again.pending('b'), { count: 3, oldestAt: 1000 });
    await again.close();
  });

  it('keeps delivered events for the retention window (at most maxPending of them), across a reopen', async () => {
    let now = 1000;
    const endpoints = [{ name: 'a', maxPending: 3 }];
    const openAt = () => Journal.open({ dir: dir.path, endpoints, now: () => now, retention: 60_000, onDrop: () => undefined });
    const history = async (j: Journal) => {
      const out: string[] = [];
      for await (const e of j.history()) out.push(e.q.event.id);
      return out;
    };
    const j = await openAt();
    await j.append([ev(1), ev(2), ev(3), ev(4)]);
    const read = await j.read('a', 10);
    await j.ack('a', read[read.length - 1]!);
    assert.deepEqual(await ids(j, 'a'), [], 'all delivered');
    assert.deepEqual(await history(j), ['id-2', 'id-3', 'id-4'], 'delivered ones kept, at most maxPending');
    await j.close();
    const again = await openAt();
    assert.deepEqual(await history(again), ['id-2', 'id-3', 'id-4']);
    await again.close();
    now += 60_001;
    const later = await openAt();
    assert.deepEqual(await history(later), [], 'older than the retention window: gone');
    await later.close();
  });

  it('cuts off a torn last line (a crash mid-append) and appends after it cleanly', async () => {
    const j = await open([{ name: 'a', maxPending: 100 }]);
    await j.append([ev(1)]);
    await j.close();
    await appendFile(join(dir.path, 'events.log'), '{"seq":2,"at":1000,"q":{"ke');
    const again = await open([{ name: 'a', maxPending: 100 }]);
    await again.append([ev(2)]);
    await again.close();
    const third = await open([{ name: 'a', maxPending: 100 }]);
    assert.deepEqual(await ids(third, 'a'), ['id-1', 'id-2']);
    await third.close();
  });

  it('drops the oldest beyond maxPending for that endpoint only, and reports how many', async () => {
    const j = await open([{ name: 'slow', maxPending: 5 }, { name: 'fast', maxPending: 100 }]);
    await j.append(Array.from({ length: 8 }, (_, i) => ev(i + 1)));
    assert.deepEqual(await ids(j, 'slow'), ['id-4', 'id-5', 'id-6', 'id-7', 'id-8']);
    assert.equal((await ids(j, 'fast')).length, 8);
    assert.deepEqual(dropped, [['slow', 3]]);
    await j.close();
  });

  it('compacts records every endpoint has passed', async () => {
    const j = await open([{ name: 'a', maxPending: 100_000 }]);
    for (let i = 0; i < 3000; i += 100) await j.append(Array.from({ length: 100 }, (_, k) => ev(i + k)));
    const before = (await stat(join(dir.path, 'events.log'))).size;
    const all = await j.read('a', 2990);
    await j.ack('a', all[all.length - 1]!);
    await j.append([ev(9999)]); // compaction runs after an append
    await j.close();
    const after = (await stat(join(dir.path, 'events.log'))).size;
    assert.ok(after < before / 10, `journal ${before} → ${after} bytes`);
    const again = await open([{ name: 'a', maxPending: 100_000 }]);
    assert.deepEqual(await ids(again, 'a'), ['id-2990', ...Array.from({ length: 9 }, (_, k) => `id-${2991 + k}`), 'id-9999']);
    assert.match(await readFile(join(dir.path, 'cursors.json'), 'utf8'), /"a":2990/);
    await again.close();
  });
});
