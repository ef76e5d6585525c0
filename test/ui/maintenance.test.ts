/**
 * gc and verify started from the web UI and watched as they run, against a real wharf (htpasswd auth,
 * `ui.admins: [admin]`) with blob files planted in its data directory: a large one (so verify takes long
 * enough to be watched and to refuse a second start), an unreferenced one an hour old (gc's to remove) and
 * one whose bytes do not match its name (verify's to take out of service). Then the Maintenance page in
 * Debian's chromium: an allowed user runs verify and a gc dry run and sees their reports; a reader sees no
 * buttons and the API refuses a forced call. An open registry follows the admin API's loopback rule.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { basicHeader, request, type Credentials, type HttpResponse } from '../helpers/http.js';
import { sha256 } from '../helpers/oci-image.js';
import { blobFile, onDisk, startWharf } from '../helpers/wharf.js';
import { launchChromium, logIn, openUi } from './browser.js';
import { ADMIN, READER, startUiFixture, type UiFixture } from './fixture.js';
import { ensureUiBuilt } from './build.js';

const WAIT = { timeout: 60_000 };
const BIG_BYTES = 96 * 1024 * 1024;

interface JobJson {
  id: string;
  kind: string;
  dryRun: boolean;
  state: string;
  startedBy: string;
  startedAt: number;
  finishedAt: number | null;
  progress: { phase: string; done: number; total: number | null; bytes: number; totalBytes: number | null };
  report?: Record<string, unknown> | null;
  error: string | null;
}

let f: UiFixture;
let browser: Browser;
const big = { digest: '', size: BIG_BYTES };
const orphan = { digest: '', size: 0 };
const corrupt = { digest: '' };
const contexts: BrowserContext[] = [];
const foreign: string[] = [];

async function plant(digest: string, bytes: Buffer, ageMs = 0): Promise<void> {
  const file = blobFile(f.wharf.dataDir, digest);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, bytes);
  if (ageMs > 0) {
    const t = new Date(Date.now() - ageMs);
    await utimes(file, t, t);
  }
}

before(async () => {
  ensureUiBuilt(); // as `make build` makes it, unless dist/ui is current
  f = await startUiFixture();
  const bigBytes = randomBytes(BIG_BYTES);
  big.digest = sha256(bigBytes);
  await plant(big.digest, bigBytes);
  const orphanBytes = randomBytes(4096);
  orphan.digest = sha256(orphanBytes);
  orphan.size = orphanBytes.length;
  await plant(orphan.digest, orphanBytes, 60 * 60 * 1000);
  corrupt.digest = sha256('what the file should hold');
  await plant(corrupt.digest, Buffer.from('what the disk holds instead'));
  browser = await launchChromium();
});
after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await f?.stop();
});

const api = (path: string, base = f.wharf.url) => `${base}/_wharf/api/${path}`;
const json = <T = Record<string, unknown>>(r: HttpResponse) => JSON.parse(r.body.toString('utf8')) as T;

async function login(who: Credentials): Promise<{ cookie: string; csrf: string }> {
  const r = await request(api('session'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-wharf-csrf': 'login' },
    body: JSON.stringify({ username: who.username, password: who.password }),
  });
  assert.equal(r.status, 200, r.body.toString());
  return { cookie: (r.headers['set-cookie'] ?? '').split(';')[0]!, csrf: json(r).csrf as string };
}

function start(s: { cookie: string; csrf: string }, body: object): Promise<HttpResponse> {
  return request(api('jobs'), { method: 'POST', headers: { cookie: s.cookie, 'x-wharf-csrf': s.csrf, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Polls a job until it ends (bounded), keeping every snapshot seen on the way. */
async function finish(cookie: string, id: string): Promise<{ job: JobJson; seen: JobJson[] }> {
  const seen: JobJson[] = [];
  for (let i = 0; i < 3000; i++) {
    const r = await request(api(`jobs?id=${id}`), { headers: { cookie } });
    assert.equal(r.status, 200, r.body.toString());
    const job = json<JobJson>(r);
    seen.push(job);
    if (job.state !== 'running') return { job, seen };
    await new Promise((res) => setTimeout(res, 20));
  }
  throw new Error(`job ${id} did not finish within a minute`);
}

describe('maintenance jobs API', () => {
  it('lets only ui.admins run or read jobs: 401 anonymous, 403 a reader (cookie or Basic), 403 without the session CSRF token', async () => {
    const reader = await login(READER);
    const admin = await login(ADMIN);
    assert.equal(json(await request(api('session'))).maintain, false);
    assert.equal(json(await request(api('session'), { headers: { cookie: reader.cookie } })).maintain, false);
    assert.equal(json(await request(api('session'), { headers: { cookie: admin.cookie } })).maintain, true);

    const anon = await request(api('jobs'), { method: 'POST', headers: { 'x-wharf-csrf': 'x', 'content-type': 'application/json' }, body: '{"kind":"gc"}' });
    assert.equal(anon.status, 401);
    assert.doesNotMatch(anon.headers['www-authenticate'] ?? '', /^Basic/i, 'no browser password prompt');
    assert.equal((await request(api('jobs'))).status, 401);
    const refused = await start(reader, { kind: 'gc' });
    assert.equal(refused.status, 403);
    assert.equal(json<{ errors: Array<{ code: string }> }>(refused).errors[0]!.code, 'DENIED');
    assert.equal((await request(api('jobs'), { headers: { cookie: reader.cookie } })).status, 403, 'reports name repositories: reading them takes the same right');
    const basic = await request(api('jobs'), { method: 'POST', headers: { authorization: basicHeader(READER), 'x-wharf-csrf': 'x', 'content-type': 'application/json' }, body: '{"kind":"verify"}' });
    assert.equal(basic.status, 403);
    assert.equal((await start({ cookie: admin.cookie, csrf: '' }, { kind: 'gc', dryRun: true })).status, 403, 'no CSRF header');
    assert.equal((await start({ cookie: admin.cookie, csrf: reader.csrf }, { kind: 'gc', dryRun: true })).status, 403, "another session's CSRF token");
    assert.equal((await start(admin, { kind: 'rm -rf' })).status, 400);
    assert.equal((await start(admin, { kind: 'gc', dryRun: 'yes' })).status, 400);

    // One raw-path rule: other spellings of the endpoint are no endpoint at all.
    for (const p of ['/_wharf/api/Jobs', '/_wharf/api/jobs/', '/_wharf/api//jobs', '/_wharf/api/%6Aobs', '/_Wharf/api/jobs']) {
      const r = await request(`${f.wharf.url}${p}`, { method: 'POST', headers: { cookie: admin.cookie, 'x-wharf-csrf': admin.csrf, 'content-type': 'application/json' }, body: '{"kind":"gc","dryRun":true}' });
      assert.notEqual(r.status, 202, p);
    }
    const list = json<{ running: unknown; jobs: unknown[] }>(await request(api('jobs'), { headers: { cookie: admin.cookie } }));
    assert.deepEqual(list, { running: null, jobs: [] }, 'nothing refused was started');
  });

  it('runs verify in the background: 202, progress moving through the bytes, the report at the end; a second start meanwhile is 409 with the running job', async () => {
    const admin = await login(ADMIN);
    const ok = await start(admin, { kind: 'verify' });
    assert.equal(ok.status, 202, ok.body.toString());
    // Hashing 96 MiB takes far longer than one more request on loopback.
    const busy = await start(admin, { kind: 'gc' });
    assert.equal(busy.status, 409, busy.body.toString());
    const started = json<JobJson>(ok);
    assert.equal(started.state, 'running');
    assert.equal(started.startedBy, 'admin');
    assert.equal(started.finishedAt, null);
    const conflict = json<{ errors: Array<{ detail: { job: JobJson } }> }>(busy).errors[0]!.detail.job;
    assert.equal(conflict.id, started.id, 'the 409 names the job that is running');
    const cli = await request(`${f.wharf.url}/_wharf/admin/verify`, { method: 'POST' });
    assert.equal(cli.status, 409, 'the admin API (wharf verify) waits its turn too');

    const { job, seen } = await finish(admin.cookie, started.id);
    assert.equal(job.state, 'succeeded', job.error ?? '');
    assert.ok(job.finishedAt! >= job.startedAt);
    // Real progress: a snapshot part-way through hashing the large blob, and bytes never going back.
    const hashing = seen.filter((s) => s.state === 'running' && s.progress.phase === 'hashing');
    assert.ok(
      hashing.some((s) => s.progress.bytes > 0 && s.progress.bytes < s.progress.totalBytes!),
      `a snapshot part-way through hashing: ${JSON.stringify(hashing.map((s) => s.progress))}`,
    );
    for (let i = 1; i < hashing.length; i++) assert.ok(hashing[i]!.progress.bytes >= hashing[i - 1]!.progress.bytes);

    const report = job.report as { checked: number; bytes: number; corrupt: Array<{ digest: string; repositories: string[] }>; skipped: string[] };
    assert.equal(job.progress.phase, 'hashing');
    assert.equal(job.progress.done, job.progress.total, 'done = total at the end');
    assert.equal(job.progress.bytes, job.progress.totalBytes);
    assert.equal(report.checked + report.skipped.length, job.progress.total, 'the report counts what progress counted');
    assert.ok(job.progress.totalBytes! >= BIG_BYTES);
    assert.deepEqual(report.corrupt.map((c) => c.digest), [corrupt.digest], 'the blob whose bytes do not match its name is taken out of service');
    assert.equal(await onDisk(f.wharf.dataDir, corrupt.digest), false);

    const list = json<{ running: unknown; jobs: JobJson[] }>(await request(api('jobs'), { headers: { cookie: admin.cookie } }));
    assert.equal(list.running, null);
    assert.deepEqual(list.jobs.map((j) => [j.id, j.state]), [[started.id, 'succeeded']]);
    assert.equal('report' in list.jobs[0]!, false, 'the list leaves reports out');
    assert.equal((await request(api('jobs?id=nope'), { headers: { cookie: admin.cookie } })).status, 404);
  });

  it('runs gc: a dry run lists the old unreferenced blob and keeps it; gc removes it and spares the young one and the pushed images', async () => {
    const admin = await login(ADMIN);
    const dry = await start(admin, { kind: 'gc', dryRun: true });
    assert.equal(dry.status, 202, dry.body.toString());
    const d = (await finish(admin.cookie, json<JobJson>(dry).id)).job;
    assert.equal(d.state, 'succeeded', d.error ?? '');
    assert.equal(d.dryRun, true);
    const dr = d.report as { blobs: Array<{ digest: string; size: number }>; freedBytes: number; dryRun: boolean };
    assert.equal(dr.dryRun, true);
    assert.deepEqual(dr.blobs, [{ digest: orphan.digest, size: orphan.size }]);
    assert.equal(d.progress.phase, 'blobs');
    assert.equal(d.progress.done, d.progress.total);
    assert.equal(await onDisk(f.wharf.dataDir, orphan.digest), true, 'a dry run removes nothing');

    const real = await start(admin, { kind: 'gc' });
    assert.equal(real.status, 202, real.body.toString());
    const g = (await finish(admin.cookie, json<JobJson>(real).id)).job;
    assert.equal(g.state, 'succeeded', g.error ?? '');
    assert.deepEqual((g.report as { blobs: Array<{ digest: string }> }).blobs.map((b) => b.digest), [orphan.digest]);
    assert.equal(await onDisk(f.wharf.dataDir, orphan.digest), false);
    assert.equal(await onDisk(f.wharf.dataDir, big.digest), true, 'younger than the grace period: spared');
    const pulled = await request(`${f.wharf.url}/v2/apps/web/manifests/1.0`, { headers: { authorization: basicHeader(READER), accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(pulled.status, 200);
    const blob = await request(`${f.wharf.url}/v2/apps/web/blobs/${f.web.layers[0]!.digest}`, { headers: { authorization: basicHeader(READER) } });
    assert.equal(blob.status, 200, 'referenced blobs stay');
  });

  it("runs the admin API's gc (what `wharf gc` calls) as a job too: the same answer as before, and listed for the UI", async () => {
    const admin = await login(ADMIN);
    const r = await request(`${f.wharf.url}/_wharf/admin/gc?dryRun=1`, { method: 'POST' });
    assert.equal(r.status, 200, r.body.toString());
    const report = json<{ dryRun: boolean; blobs: unknown[]; freedBytes: number }>(r);
    assert.equal(report.dryRun, true);
    assert.deepEqual(report.blobs, [], 'the orphan went in the gc above');
    const [last] = json<{ jobs: JobJson[] }>(await request(api('jobs'), { headers: { cookie: admin.cookie } })).jobs;
    assert.deepEqual([last!.kind, last!.dryRun, last!.state, last!.startedBy], ['gc', true, 'succeeded', 'admin API']);
    assert.deepEqual(json<JobJson>(await request(api(`jobs?id=${last!.id}`), { headers: { cookie: admin.cookie } })).report, report);
  });

  it('on a registry without auth follows the admin API rule: callers on this host only', async () => {
    const open = await startWharf();
    try {
      const post = (headers: Record<string, string>) =>
        request(api('jobs', open.url), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"kind":"gc","dryRun":true}' });
      const forwarded = { 'x-forwarded-for': '203.0.113.7' };
      assert.equal(json(await request(api('session', open.url), { headers: forwarded })).maintain, false);
      assert.equal((await post({ 'x-wharf-csrf': 'x', ...forwarded })).status, 403, 'a client behind a proxy on this host is not a local caller');
      assert.equal((await post({})).status, 403, 'the CSRF header is needed here too');
      assert.equal(json(await request(api('session', open.url))).maintain, true);
      const r = await post({ 'x-wharf-csrf': 'x' });
      assert.equal(r.status, 202, r.body.toString());
      assert.equal(json<JobJson>(r).startedBy, 'local');
    } finally {
      await open.stop();
    }
  });
});

const open = (viewport?: { width: number; height: number }): Promise<Page> => openUi(browser, f.wharf.url, { contexts, foreign, ...(viewport ? { viewport } : {}) });

describe('Maintenance page in chromium', () => {
  it('an allowed user starts verify from the keyboard and a gc dry run, at phone width, and sees each finish with its report', async () => {
    const page = await open({ width: 390, height: 844 });
    await logIn(page, ADMIN, WAIT);
    await page.getByRole('link', { name: 'Maintenance' }).click();
    await page.getByRole('heading', { name: 'Maintenance', level: 1 }).waitFor(WAIT);

    const verify = page.getByRole('button', { name: 'Verify', exact: true });
    await verify.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'verify: succeeded' }).waitFor(WAIT);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'job-h', 'keyboard focus moves to the job it started');
    const bar = page.getByRole('progressbar', { name: 'Progress of verify' });
    assert.equal(await bar.getAttribute('value'), await bar.getAttribute('max'), 'the bar is full when done');
    assert.match((await page.getByTestId('verify-checked').textContent()) ?? '', /^\d+ blobs, 9\d\.\d MiB$/);
    assert.equal(await verify.isEnabled(), true, 'the buttons come back');

    await page.getByRole('button', { name: 'Run gc (dry run)', exact: true }).click();
    await page.getByRole('heading', { name: 'gc (dry run): succeeded' }).waitFor(WAIT);
    await page.getByText('Would free').waitFor(WAIT);
    const rows = page.getByRole('table', { name: 'Recent jobs' }).getByRole('row');
    assert.ok((await rows.count()) >= 3, 'header and at least the two jobs run here');
    await rows.nth(1).getByRole('cell', { name: 'gc (dry run)', exact: true }).waitFor(WAIT);

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling at phone width (${overflow}px too wide)`);
    assert.deepEqual(foreign, []);
  });

  it('a reader sees no Maintenance link or buttons, and a forced API call from the page is refused', async () => {
    const page = await open();
    await logIn(page, READER, WAIT);
    assert.equal(await page.getByRole('link', { name: 'Maintenance' }).count(), 0);
    await page.goto(`${f.wharf.url}/#/maintenance`);
    await page.getByRole('heading', { name: 'Maintenance', level: 1 }).waitFor(WAIT);
    await page.getByRole('alert').waitFor(WAIT);
    for (const name of ['Run gc (dry run)', 'Run gc', 'Verify']) assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, name);
    const status = await page.evaluate(async () => {
      const s = (await (await fetch('/_wharf/api/session')).json()) as { csrf: string };
      const r = await fetch('/_wharf/api/jobs', { method: 'POST', headers: { 'content-type': 'application/json', 'x-wharf-csrf': s.csrf }, body: '{"kind":"gc"}' });
      return r.status;
    });
    assert.equal(status, 403);
    assert.deepEqual(foreign, []);
  });
});
