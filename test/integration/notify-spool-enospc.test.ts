/**
 * An event that can be queued nowhere — Redis away and the data directory full (a real 4 MiB tmpfs) — fails
 * its request with 503 UNAVAILABLE and the reason, never a 500; once there is room again, pulls go on and
 * their events are spooled. Needs root and tmpfs; skipped with a message otherwise.
 */
import assert from 'node:assert/strict';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { it } from 'node:test';
import { request } from '../helpers/http.js';
import { smallDisk, unmountTmpfs } from '../helpers/tmpfs.js';
import { pushBlob, startReceiver } from '../helpers/webhook.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { startRedisServer, testPrefix } from './cluster-helpers.js';

it('Redis away and no room for the spool: the pull answers 503 with the reason, then recovers', async (t) => {
  const dir = await smallDisk(t, 'wharf-spool-enospc', '4m');
  if (dir === undefined) return;
  const rx = await startReceiver('ok');
  const redis = await startRedisServer();
  let w: WharfProcess | undefined;
  try {
    w = await startWharf({
      dataDir: dir,
      config: { upstreams: [], redis: { url: redis.url, keyPrefix: testPrefix() }, notifications: { endpoints: [{ name: 'ci', url: rx.url }] } },
    });
    const digest = await pushBlob(w.url, 'team/app');
    assert.equal((await request(`${w.url}/v2/team/app/blobs/${digest}`)).status, 200);

    // Fill the disk, then take Redis away.
    const filler = join(dir, 'filler');
    const fh = await open(filler, 'w');
    try {
      for (;;) await fh.write(Buffer.alloc(64 * 1024));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    } finally {
      await fh.close();
    }
    await redis.stop();
    const res = await request(`${w.url}/v2/team/app/blobs/${digest}`);
    assert.equal(res.status, 503, describeResponse(res));
    assert.ok(errorCodes(res).includes('UNAVAILABLE'), describeResponse(res));
    assert.match(res.body.toString('utf8'), /ENOSPC/, 'the reason is given');

    await rm(filler);
    const again = await request(`${w.url}/v2/team/app/blobs/${digest}`);
    assert.equal(again.status, 200, `room again: ${describeResponse(again)}`);
  } finally {
    await w?.stop();
    await redis.stop();
    await rx.stop();
    await unmountTmpfs(dir);
    await rm(dir, { recursive: true, force: true });
  }
});
