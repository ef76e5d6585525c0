/**
 * The cache dashboard and the image page's referrers in a real browser (Debian's chromium, driven by
 * playwright-core) against a real wharf and a Distribution upstream: the most pulled repositories appear and
 * reorder without a reload, a slow download shows as a progress bar, an unreachable upstream shows as such
 * beside a reachable one with its rate limit; polling stops while the tab is hidden; a phone-width window in
 * dark mode scrolls no page sideways; an image's SBOM is listed on its page. No request leaves for another host.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { basicHeader, request, type Credentials } from '../helpers/http.js';
import { launchChromium } from './browser.js';
import { ensureUiBuilt } from './build.js';
import { BIG_RATE, SBOM_TYPE, getManifest, startDashboardFixture, type DashboardFixture } from './dashboard-fixture.js';
import { READER } from './fixture.js';

const WAIT = { timeout: 30_000 };

let f: DashboardFixture;
let browser: Browser;
const foreign: string[] = [];
const contexts: BrowserContext[] = [];

before(async () => {
  ensureUiBuilt();
  f = await startDashboardFixture();
  browser = await launchChromium();
});
after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await f?.stop();
  assert.deepEqual(foreign, [], 'no request left for another host');
});

async function open(who: Credentials, options: Parameters<Browser['newContext']>[0] = {}): Promise<Page> {
  const context = await browser.newContext(options);
  contexts.push(context);
  const page = await context.newPage();
  page.on('request', (r) => {
    if (!r.url().startsWith(f.wharf.url)) foreign.push(r.url());
  });
  await page.goto(`${f.wharf.url}/`);
  await page.getByRole('link', { name: 'Log in' }).click();
  await page.getByLabel('User name').fill(who.username);
  await page.getByLabel('Password or token').fill(who.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor(WAIT);
  return page;
}

/** The body rows of a table as text: [row header, cells…] each. */
async function rows(page: Page, table: string): Promise<string[][]> {
  return page.getByRole('table', { name: table }).locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => (c.textContent ?? '').trim())));
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what}: not seen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('cache dashboard in chromium', () => {
  it('shows the most pulled repositories, a download in flight and upstream health, refreshed live', async () => {
    const base = f.wharf.url;
    const page = await open(READER);
    await page.getByRole('link', { name: 'Cache' }).click();
    await page.getByRole('heading', { name: 'Most pulled' }).waitFor(WAIT);
    assert.deepEqual(await rows(page, 'Last hour'), [['No pulls']]);
    for (const name of ['hub', 'dead']) assert.equal((await rows(page, 'Upstreams')).find((r) => r[0] === name)?.[1], 'Not contacted yet');

    // Pulls made elsewhere show up without a reload: busybox first, then alpine overtakes it.
    assert.equal((await getManifest(base, 'library/busybox', '1', READER)).status, 200);
    await until('busybox in the hour list', async () => JSON.stringify(await rows(page, 'Last hour')) === JSON.stringify([['library/busybox', '1']]));
    for (let i = 0; i < 2; i++) assert.equal((await getManifest(base, 'library/alpine', '1', READER)).status, 200);
    const ranked = [['library/alpine', '2'], ['library/busybox', '1']];
    await until('alpine on top', async () => JSON.stringify(await rows(page, 'Last hour')) === JSON.stringify(ranked));
    assert.deepEqual(await rows(page, 'Last day'), ranked);
    await page.getByRole('table', { name: 'Last hour' }).getByRole('link', { name: 'library/alpine' }).waitFor(WAIT);

    // A slow download: a progress bar named after what it fetches, part way.
    const layer = f.big.layers[0]!;
    f.proxy.inject({ match: { method: 'GET', path: `/v2/library/big/blobs/${layer.digest}` }, action: { kind: 'pace', bytesPerSecond: BIG_RATE } });
    assert.equal((await getManifest(base, 'library/big', '1', READER)).status, 200);
    const blob = request(`${base}/v2/library/big/blobs/${layer.digest}`, { headers: { authorization: basicHeader(READER) } });
    const bar = page.getByRole('progressbar', { name: /^library\/big sha256:/ });
    await bar.waitFor(WAIT);
    const value = Number(await bar.getAttribute('value'));
    assert.equal(Number(await bar.getAttribute('max')), layer.bytes.length);
    assert.ok(value > 0 && value < layer.bytes.length, `part way: ${value} of ${layer.bytes.length}`);
    assert.match((await bar.getAttribute('aria-label')) ?? '', / of 3\.\d MiB$/);

    // The unreachable upstream, beside the reachable one.
    const failed = await getManifest(base, 'dead.example/team/app', '1', READER);
    assert.ok(failed.status >= 500);
    await until('the dead upstream shown unreachable', async () => (await rows(page, 'Upstreams')).find((r) => r[0] === 'dead')?.[1] === 'Unreachable');
    const up = await rows(page, 'Upstreams');
    const hub = up.find((r) => r[0] === 'hub')!;
    const dead = up.find((r) => r[0] === 'dead')!;
    assert.equal(hub[1], 'Reachable');
    assert.equal(hub[2], 'just now');
    assert.equal(dead[2], 'never');
    assert.match(dead[3]!, /upstream dead unreachable/);

    assert.equal((await blob).status, 200);
    await bar.waitFor({ state: 'detached', timeout: 30_000 });
    await page.getByText('Nothing is being fetched from an upstream on this replica right now.').waitFor(WAIT);
  });

  it('stops polling while the tab is hidden and refreshes at once when it is shown again', async () => {
    const page = await open(READER);
    let polls = 0;
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/_wharf/api/stats') polls++;
    });
    await page.getByRole('link', { name: 'Cache' }).click();
    await page.getByRole('heading', { name: 'Most pulled' }).waitFor(WAIT);
    await until('a refresh while visible', async () => polls >= 2, 15_000);
    // A string, not a function: tsx's helpers (__name) do not exist in the page.
    const visibility = (hidden: boolean) =>
      page.evaluate(`(() => {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => ${hidden} });
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => '${hidden ? 'hidden' : 'visible'}' });
        document.dispatchEvent(new Event('visibilitychange'));
      })()`);
    await visibility(true);
    const before = polls;
    await new Promise((r) => setTimeout(r, 7000)); // longer than the 5 s refresh
    assert.equal(polls, before, 'no request while hidden');
    await visibility(false);
    await until('a refresh as soon as the tab is shown', async () => polls > before, 2000);
  });

  it('fits a phone-width window in dark mode', async () => {
    const page = await open(READER, { viewport: { width: 360, height: 740 }, colorScheme: 'dark' });
    await page.getByRole('link', { name: 'Cache' }).click();
    await page.getByRole('table', { name: 'Upstreams' }).waitFor(WAIT);
    const { scroll, width, bg } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: innerWidth, bg: getComputedStyle(document.body).backgroundColor }));
    assert.ok(scroll <= width, `the page does not scroll sideways (${scroll} > ${width})`);
    assert.equal(bg, 'rgb(15, 19, 23)', 'dark background');
  });

  it("lists an image's referrers on its page and links each to its own page", async () => {
    const page = await open(READER);
    await page.goto(`${f.wharf.url}/#/image/apps%2Fsigned/1.0`);
    await page.getByRole('heading', { name: 'Referrers' }).waitFor(WAIT);
    const link = page.getByRole('table', { name: 'Referrers' }).getByRole('link', { name: SBOM_TYPE });
    await link.click();
    await page.getByText('Refers to').waitFor(WAIT);
    await page.getByRole('link', { name: f.signed.manifestDigest.slice(0, 19) }).waitFor(WAIT);
    assert.ok(page.url().includes(encodeURIComponent(f.sbom.digest)), page.url());
  });
});
