import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { digestOf } from '../../src/oci/index.js';
import { openMetadataStore, retryUntil } from '../../src/store/index.js';

describe('openMetadataStore', () => {
  it('without redis opens the embedded store under <dataDir>/meta, and it persists', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'wharf-open-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const a = await openMetadataStore({ dataDir });
    assert.equal(a.kind, 'embedded');
    await a.putTag('r', 'v', { digest: digestOf('x'), mediaType: 'm', size: 1, checkedAt: 1, origin: 'local' });
    assert.ok((await stat(join(dataDir, 'meta', 'LOCK'))).isFile());
    await a.close();
    const b = await openMetadataStore({ dataDir });
    t.after(() => b.close());
    assert.equal((await b.getTag('r', 'v'))?.digest, digestOf('x'));
  });

  it('with redis uses it under the key prefix', async (t) => {
    const keyPrefix = `wharf-test:${randomBytes(6).toString('hex')}:`;
    const s = await openMetadataStore({ dataDir: '/nonexistent', redis: { url: 'redis://127.0.0.1:6379', keyPrefix } });
    t.after(async () => {
      await s.close();
      const r = new Redis('redis://127.0.0.1:6379');
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await r.del(...keys);
      } while (cursor !== '0');
      await r.quit();
    });
    assert.equal(s.kind, 'redis');
    await s.markRepo('r', { local: true });
    const r = new Redis('redis://127.0.0.1:6379');
    t.after(() => r.quit().then(() => undefined));
    assert.equal(await r.zscore(`${keyPrefix}repos`, 'r'), '0');
  });

  it('names the redis url (without password) when redis does not answer', async (t) => {
    // A port that refuses connections: bind one, then close it.
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as { port: number };
    await new Promise((r) => srv.close(r));
    const url = `redis://:secret@127.0.0.1:${port}`;
    await assert.rejects(openMetadataStore({ dataDir: '/nonexistent', redis: { url, keyPrefix: 'x:' } }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, new RegExp(`cannot reach redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
      assert.ok(!e.message.includes('secret'));
      return true;
    });
    t.diagnostic('refused as expected');
  });
});

describe('retryUntil (start-up calls to Redis)', () => {
  it('retries with a doubling, capped wait until the call succeeds; reports each failure', async () => {
    let calls = 0;
    const seen: number[] = [];
    const started = Date.now();
    const v = await retryUntil(
      async () => {
        if (++calls < 4) throw new Error(`down ${calls}`);
        return 'up';
      },
      { signal: new AbortController().signal, onFailure: (_e, n) => seen.push(n), firstMs: 5, maxMs: 10 },
    );
    assert.equal(v, 'up');
    assert.deepEqual(seen, [1, 2, 3]);
    assert.ok(Date.now() - started >= 5 + 10 + 10, 'waited between attempts');
  });

  it('rethrows a fatal failure at once, and stops when aborted', async () => {
    const wrongPass = new Error('WRONGPASS invalid username-password pair');
    await assert.rejects(retryUntil(() => Promise.reject(wrongPass), { signal: new AbortController().signal, fatal: (e) => e.message.startsWith('WRONGPASS') }), wrongPass);
    const ac = new AbortController();
    const forever = retryUntil(() => Promise.reject(new Error('down')), { signal: ac.signal, firstMs: 60_000 });
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(forever, (e: Error) => e.name === 'AbortError');
  });
});

