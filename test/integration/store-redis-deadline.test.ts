/**
 * The Redis command deadline against a real Redis: a reply that came while wharf's process could not run is
 * taken (a loaded machine must not turn a healthy Redis into 503s), and a Redis that stops answering still
 * fails a command within about a second.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { digestOf, isRegistryError } from '../../src/oci/index.js';
import { openMetadataStore, REDIS_COMMAND_TIMEOUT_MS } from '../../src/store/index.js';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { startTcpDelay } from '../helpers/tcp-delay.js';

const keyPrefix = testPrefix();
after(() => deleteKeys(REDIS_URL, keyPrefix));

/** Keeps this process from running anything else, as a starved or overloaded process is kept. */
function busyFor(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // spin
  }
}

const rec = { digest: digestOf('x'), mediaType: 'm', size: 1, checkedAt: 1, origin: 'local' as const };

describe('Redis command deadline', () => {
  it('a reply that arrived while the process was busy past the deadline is taken, not called timed out', async (t) => {
    const store = await openMetadataStore({ dataDir: '/nonexistent', redis: { url: REDIS_URL, keyPrefix } });
    t.after(() => store.close());
    // Neither has an earlier value to fall back on: a timed-out command would reject both.
    const write = store.putTag('r', 'w', rec);
    const read = store.getTag('r', 'never-written');
    busyFor(REDIS_COMMAND_TIMEOUT_MS + 600);
    await write;
    assert.equal(await read, undefined);
    assert.equal((await store.getTag('r', 'w'))?.digest, rec.digest);
  });

  it('a Redis that stops answering fails a command with UNAVAILABLE within about a second', async (t) => {
    const url = new URL(REDIS_URL);
    const link = await startTcpDelay({ host: url.hostname, port: Number(url.port || 6379) });
    t.after(() => link.stop());
    url.host = link.address;
    const store = await openMetadataStore({ dataDir: '/nonexistent', redis: { url: url.toString(), keyPrefix } });
    t.after(() => store.close());
    await store.putTag('r', 'x', rec);
    link.delayMs = 5_000; // what the store sends now reaches Redis only after 5 s
    const t0 = Date.now();
    await assert.rejects(store.putTag('r', 'y', rec), (e: unknown) => isRegistryError(e) && e.code === 'UNAVAILABLE');
    const took = Date.now() - t0;
    assert.ok(took >= REDIS_COMMAND_TIMEOUT_MS && took < 2_000, `failed after ${took} ms`);
  });
});
