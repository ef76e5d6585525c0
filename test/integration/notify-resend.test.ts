/**
 * `wharf events resend`: a range of events already delivered (by event id, or by time) is sent again to
 * one endpoint only, in order, with the same ids; with the embedded journal and with the Redis stream.
 * Real wharf processes, the real CLI, real receivers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { request } from '../helpers/http.js';
import { wharfCli as runCli } from '../helpers/wharf-cli.js';
import { pushBlob, startReceiver, type WebhookReceiver } from '../helpers/webhook.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

const pushes = (events: Array<Record<string, any>>): Array<Record<string, any>> => events.filter((e) => e.action === 'push');

for (const mode of ['embedded', 'redis'] as const) {
  describe(`notifications: resend a range (${mode})`, () => {
    let rx: WebhookReceiver;
    let other: WebhookReceiver;
    let w: WharfProcess;
    const keyPrefix = testPrefix();

    before(async () => {
      rx = await startReceiver('ok');
      other = await startReceiver('ok');
      w = await startWharf({
        config: {
          upstreams: [],
          ...(mode === 'redis' ? { redis: { url: REDIS_URL, keyPrefix } } : {}),
          notifications: {
            endpoints: [
              { name: 'ci', url: rx.url },
              { name: 'other', url: other.url },
            ],
          },
        },
      });
    });
    after(async () => {
      await w?.stop();
      await rx?.stop();
      await other?.stop();
      if (mode === 'redis') await deleteKeys(REDIS_URL, keyPrefix);
    });

    it('sends the range from one event id to another again, to that endpoint only, in order', async () => {
      const pushed: string[] = [];
      for (let i = 0; i < 6; i++) pushed.push(await pushBlob(w.url, 'team/app'));
      await rx.waitFor((e) => pushes(e).length >= 6, 30_000, 'the pushes');
      await other.waitFor((e) => pushes(e).length >= 6, 30_000, 'the pushes (other endpoint)');
      const first = pushes(rx.events());
      assert.deepEqual(first.map((e) => e.target.digest), pushed);

      const res = await runCli(['events', 'resend', 'ci', '--from', first[1]!.id, '--to', first[4]!.id, '--url', w.url]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /^4 events queued again for ci$/m);
      await rx.waitFor((e) => pushes(e).length >= 10, 30_000, 'the re-sent range');
      const again = pushes(rx.events()).slice(6);
      assert.deepEqual(again.map((e) => e.id), first.slice(1, 5).map((e) => e.id), 'the same events, same ids, in order');
      assert.deepEqual(again, first.slice(1, 5), 'unchanged');

      // From a time on, and the other endpoint gets none of it.
      const since = new Date(Date.now()).toISOString();
      await new Promise((r) => setTimeout(r, 20));
      const later = await pushBlob(w.url, 'team/app');
      await rx.waitFor((e) => pushes(e).length >= 11, 30_000, 'one more push');
      const byTime = await runCli(['events', 'resend', 'ci', '--from', since, '--url', w.url, '--json']);
      assert.equal(byTime.code, 0, byTime.stderr);
      assert.deepEqual(JSON.parse(byTime.stdout), { endpoint: 'ci', resent: 1 });
      await rx.waitFor((e) => pushes(e).length >= 12, 30_000, 'the push re-sent by time');
      assert.equal(pushes(rx.events())[11]!.target.digest, later);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(pushes(other.events()).length, 7, 'the other endpoint got nothing again');
    });

    it('answers clearly for an unknown endpoint, a bad bound, an event no longer kept', async () => {
      const post = (q: string) => request(`${w.url}/_wharf/admin/events/resend?${q}`, { method: 'POST' });
      assert.equal((await post('endpoint=nope&from=0')).status, 404);
      assert.equal((await post('endpoint=ci&from=yesterday')).status, 400);
      assert.equal((await post('endpoint=ci')).status, 400);
      assert.equal((await post('endpoint=ci&from=00000000-0000-4000-8000-000000000000')).status, 404);
    });
  });
}
