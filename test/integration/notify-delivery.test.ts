/**
 * Webhook delivery from a real wharf process to real receivers on loopback: order and completeness
 * through an endpoint outage and a kill -9, one stuck endpoint delaying nobody, HMAC signatures,
 * repository and action filters, the cloudevents format.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { pushBlob, startReceiver, verifySignature } from '../helpers/webhook.js';
import { startWharf } from '../helpers/wharf.js';


/** Digests of push events in first-arrival order, each once (delivery is at least once; ids de-duplicate). */
function pushedDigests(events: Array<Record<string, any>>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const e of events) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    if (e.action === 'push') out.push(e.target.digest);
  }
  return out;
}

/** Metrics follow deliveries a moment later: polls /metrics until `re` matches (bounded). */
async function waitMetric(base: string, re: RegExp, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let body = '';
  while (Date.now() < deadline) {
    body = (await request(`${base}/metrics`)).body.toString();
    if (re.test(body)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(body.split('\n').filter((l) => l.startsWith('wharf_notify')).join('\n'), re);
}

/** `wharf <args>` (the real CLI, talking to the admin API); resolves with its exit code and output. */
function wharfCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cwd = fileURLToPath(new URL('../..', import.meta.url));
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const fast = { timeout: '500ms', threshold: 2, backoff: '100ms', maxBackoff: '400ms' };

describe('notifications: delivery', () => {
  let dir: TempDir;
  before(async () => {
    dir = await tempDir('wharf-notify-delivery-');
  });
  after(async () => {
    await dir?.cleanup();
  });

  it('an endpoint down for a while gets everything once it is back, in order', async () => {
    const rx = await startReceiver('fail');
    const w = await startWharf({ config: { upstreams: [], notifications: { endpoints: [{ name: 'ci', url: rx.url, ...fast }] } } });
    try {
      const pushed: string[] = [];
      for (let i = 0; i < 15; i++) pushed.push(await pushBlob(w.url, 'team/app'));
      // Failing for real: the endpoint was tried and refused, and nothing got through.
      const deadline = Date.now() + 20_000;
      while (rx.refused < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      assert.ok(rx.refused >= 3, `endpoint tried ${rx.refused} times`);
      assert.equal(rx.events().length, 0);
      rx.mode = 'ok';
      await rx.waitFor((e) => pushedDigests(e).length >= pushed.length, 30_000, 'all pushes after the outage');
      assert.deepEqual(pushedDigests(rx.events()), pushed);
      await waitMetric(w.url, /wharf_notify_failed_total\{endpoint="ci",status="503"\} [1-9]/);
      await waitMetric(w.url, /wharf_notify_delivered_total\{endpoint="ci"\} 15\n/);
      await waitMetric(w.url, /wharf_notify_pending_events\{endpoint="ci"\} 0\n/);
    } finally {
      await w.stop();
      await rx.stop();
    }
  });

  it('events pending at a kill -9 are delivered after the restart, in order', async () => {
    const rx = await startReceiver('fail');
    const w = await startWharf({ config: { upstreams: [], notifications: { endpoints: [{ name: 'ci', url: rx.url, ...fast }] } } });
    try {
      const pushed: string[] = [];
      for (let i = 0; i < 10; i++) pushed.push(await pushBlob(w.url, 'team/app'));
      await w.kill();
      rx.mode = 'ok';
      await w.restart();
      await rx.waitFor((e) => pushedDigests(e).length >= pushed.length, 30_000, 'pushes from before the kill');
      assert.deepEqual(pushedDigests(rx.events()), pushed);
      // And delivery goes on after the restart.
      const later = await pushBlob(w.url, 'team/app');
      await rx.waitFor((e) => pushedDigests(e).includes(later), 30_000, 'a push after the restart');
      assert.deepEqual(pushedDigests(rx.events()), [...pushed, later]);
    } finally {
      await w.stop();
      await rx.stop();
    }
  });

  it('an endpoint that never answers delays neither the other endpoints nor any request', async () => {
    const stuck = await startReceiver('hang');
    const ok = await startReceiver('ok');
    const w = await startWharf({
      config: { upstreams: [], notifications: { endpoints: [{ name: 'stuck', url: stuck.url, ...fast, timeout: '1h' }, { name: 'ok', url: ok.url, ...fast }] } },
    });
    try {
      const pushed: string[] = [];
      for (let i = 0; i < 10; i++) pushed.push(await pushBlob(w.url, 'team/app'));
      await ok.waitFor((e) => pushedDigests(e).length >= pushed.length, 30_000, 'the healthy endpoint\'s events');
      assert.deepEqual(pushedDigests(ok.events()), pushed);
      assert.ok(stuck.refused >= 1, 'the stuck endpoint was tried');
      await waitMetric(w.url, /wharf_notify_pending_events\{endpoint="stuck"\} 10\n/);
      // Shutdown does not wait for the stuck delivery either.
      await w.stop();
      assert.equal(w.lastExit()?.forced, false, 'wharf stopped on SIGTERM');
      assert.equal(w.lastExit()?.code, 0);
    } finally {
      await w.stop();
      await stuck.stop();
      await ok.stop();
    }
  });

  it('signs each body with HMAC-SHA256 in X-Wharf-Signature, which the receiver verifies', async () => {
    const secret = randomBytes(24).toString('hex');
    const secretFile = join(dir.path, 'hook-secret');
    await writeFile(secretFile, `${secret}\n`);
    const rx = await startReceiver('ok');
    const w = await startWharf({ config: { upstreams: [], notifications: { endpoints: [{ name: 'signed', url: rx.url, secret: { file: secretFile } }] } } });
    try {
      const d = await pushBlob(w.url, 'team/app');
      await rx.waitFor((e) => pushedDigests(e).includes(d));
      for (const del of rx.deliveries) {
        assert.ok(verifySignature(secret, del.body, del.headers['x-wharf-signature']), `signature ${del.headers['x-wharf-signature']}`);
        assert.ok(!verifySignature('not-the-secret', del.body, del.headers['x-wharf-signature']));
        assert.ok(!verifySignature(secret, Buffer.concat([del.body, Buffer.from(' ')]), del.headers['x-wharf-signature']));
      }
      assert.ok(!w.logs().includes(secret), 'the secret never reaches the log');
    } finally {
      await w.stop();
      await rx.stop();
    }
  });

  it('filters by repository glob, ignored actions and media types; cloudevents sends one event per request', async () => {
    const team = await startReceiver('ok');
    const all = await startReceiver('ok');
    const ce = await startReceiver('ok');
    const w = await startWharf({
      config: {
        upstreams: [],
        notifications: {
          endpoints: [
            { name: 'team', url: team.url, repositories: ['team/**'], ignore: { actions: ['pull'] }, ignoredmediatypes: ['application/octet-stream'] },
            { name: 'all', url: all.url },
            { name: 'ce', url: ce.url, format: 'cloudevents', repositories: ['other/*'] },
          ],
        },
      },
    });
    try {
      const img = makeImage({ format: 'docker' });
      await pushImage(w.url, 'team/deep/app', 'v1', img);
      await pushImage(w.url, 'other/app', 'v1', img);
      assert.equal((await request(`${w.url}/v2/team/deep/app/manifests/v1`, { headers: { accept: img.mediaType } })).status, 200);
      // 'all' takes everything: 2 × (3 blobs + 1 manifest) pushes, 1 pull.
      await all.waitFor((e) => e.length >= 9, 30_000, 'every event');
      await ce.waitFor((e) => e.length >= 4, 30_000, 'other/app events as cloudevents');
      // Ordered per endpoint: team's only event came before 'all' saw the pull, so it has arrived by now.
      await team.waitFor((e) => e.length >= 1, 30_000, 'team events');
      assert.deepEqual(
        team.events().map((e) => [e.action, e.target.repository, e.target.mediaType, e.target.tag]),
        [['push', 'team/deep/app', img.mediaType, 'v1']],
      );
      assert.ok(ce.events().every((e) => e.target.repository === 'other/app'));
      for (const d of ce.deliveries) {
        assert.equal(d.headers['content-type'], 'application/cloudevents+json');
        const body = JSON.parse(d.body.toString());
        assert.equal(body.specversion, '1.0');
        assert.equal(body.id, body.data.id);
        assert.equal(body.type, `io.github.wharf.registry.${body.data.action}`);
      }
    } finally {
      await w.stop();
      await Promise.all([team.stop(), all.stop(), ce.stop()]);
    }
  });

  it('wharf events lists each endpoint\'s state; wharf events retry ends a back-off at once', async () => {
    const rx = await startReceiver('fail');
    const w = await startWharf({
      config: { upstreams: [], notifications: { endpoints: [{ name: 'ci', url: rx.url, timeout: '500ms', threshold: 1, backoff: '1h', maxBackoff: '1h' }] } },
    });
    try {
      const pushed = [await pushBlob(w.url, 'team/app'), await pushBlob(w.url, 'team/app')];
      const deadline = Date.now() + 20_000;
      while (rx.refused < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      const listed = await wharfCli(['events', '--url', w.url, '--json']);
      assert.equal(listed.code, 0, listed.stderr + listed.stdout);
      const [ep] = JSON.parse(listed.stdout) as Array<Record<string, any>>;
      assert.equal(ep!.name, 'ci');
      assert.equal(ep!.pending, 2);
      assert.ok(ep!.failures >= 1);
      assert.match(ep!.lastError, /503/);
      const text = await wharfCli(['events', '--url', w.url]);
      assert.match(text.stdout, /^ci: failing .*2 events pending/m);
      // Backing off for an hour: only the retry command brings the events now.
      rx.mode = 'ok';
      const retried = await wharfCli(['events', 'retry', 'ci', '--url', w.url]);
      assert.equal(retried.code, 0, retried.stderr);
      await rx.waitFor((e) => pushedDigests(e).length >= 2, 20_000, 'events after retry');
      assert.deepEqual(pushedDigests(rx.events()), pushed);
      assert.notEqual((await wharfCli(['events', 'retry', 'nope', '--url', w.url])).code, 0);
    } finally {
      await w.stop();
      await rx.stop();
    }
  });
});
