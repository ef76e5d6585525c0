/**
 * The web UI end to end in a real browser (Debian's chromium, driven by playwright-core) against a real
 * wharf and a Distribution upstream: log in, search, open a multi-platform image, copy a pull command, delete
 * as an allowed user, be refused as a reader (no button, and the API refuses too), watch the hit ratio move
 * after a pull. No request may leave for another host.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { request } from '../helpers/http.js';
import { launchChromium, logIn, openUi } from './browser.js';
import { ADMIN, HOSTILE, READER, pullManifest, startUiFixture, type UiFixture } from './fixture.js';
import type { Credentials } from '../helpers/http.js';
import { ensureUiBuilt } from './build.js';

const WAIT = { timeout: 30_000 };

let f: UiFixture;
let browser: Browser;
const foreign: string[] = [];
const contexts: BrowserContext[] = [];

before(async () => {
  ensureUiBuilt(); // as `make build` makes it, unless dist/ui is current
  f = await startUiFixture();
  browser = await launchChromium();
});
after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await f?.stop();
});

const open = (): Promise<Page> => openUi(browser, f.wharf.url, { contexts, foreign, clipboard: true });
const login = (page: Page, who: Credentials): Promise<void> => logIn(page, who, WAIT);

describe('web UI in chromium', () => {
  it('logs in, searches, opens a multi-platform image and copies its pull command', async () => {
    const page = await open();
    await login(page, READER);
    const search = page.getByRole('searchbox', { name: 'Search' });
    await search.fill('mult');
    await page.getByText('1 repository').waitFor(WAIT);
    await page.getByRole('link', { name: 'apps/multi' }).click();
    await page.getByRole('heading', { name: 'apps/multi' }).waitFor(WAIT);
    await page.getByRole('cell', { name: 'linux/amd64, linux/arm64/v8' }).waitFor(WAIT);
    await page.getByRole('link', { name: '2.0' }).click();
    await page.getByRole('heading', { name: 'Platforms' }).waitFor(WAIT);
    for (const p of ['linux/amd64', 'linux/arm64/v8']) await page.getByRole('link', { name: p }).waitFor(WAIT);

    await page.getByRole('radio', { name: 'podman' }).check();
    await page.getByRole('button', { name: 'Copy podman pull command by digest' }).click();
    // The button says so once the clipboard write has resolved.
    await page.getByRole('button', { name: 'Copy podman pull command by digest' }).filter({ hasText: 'Copied' }).waitFor(WAIT);
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, `podman pull --tls-verify=false ${f.wharf.host}/apps/multi@${f.multi.digest}`);
    // containerd's ctr (plain HTTP here, as the page was loaded over http:), by tag.
    await page.getByRole('radio', { name: 'ctr' }).check();
    await page.getByRole('button', { name: 'Copy ctr pull command by tag' }).click();
    await page.getByRole('button', { name: 'Copy ctr pull command by tag' }).filter({ hasText: 'Copied' }).waitFor(WAIT);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `ctr image pull --plain-http ${f.wharf.host}/apps/multi:2.0`);

    // A platform's page: layers and config.
    await page.getByRole('link', { name: 'linux/arm64/v8' }).click();
    await page.getByRole('heading', { name: 'Layers' }).waitFor(WAIT);
    assert.equal(await page.locator('text=arm64').count() > 0, true);
    // No delete for a reader.
    assert.equal(await page.getByRole('button', { name: /Delete|Purge/ }).count(), 0);
  });

  it('shows a hostile label as text', async () => {
    const page = await open();
    await login(page, READER);
    await page.goto(`${f.wharf.url}/#/image/apps%2Fweb/1.0`);
    await page.getByRole('heading', { name: 'Config' }).waitFor(WAIT);
    await page.getByText(`org.example.note=${HOSTILE}`).waitFor(WAIT);
    assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
    assert.equal(await page.locator('img').count(), 0);
  });

  it('a reader has no delete button and the API refuses it; the admin deletes a tag', async () => {
    const reader = await open();
    await login(reader, READER);
    await reader.goto(`${f.wharf.url}/#/repo/apps%2Fweb`);
    await reader.getByRole('link', { name: 'old' }).waitFor(WAIT);
    assert.equal(await reader.getByRole('button', { name: /Delete tag/ }).count(), 0);
    // The same call the button would make, from the reader's page with its own session and CSRF token.
    const status = await reader.evaluate(async () => {
      const s = (await (await fetch('/_wharf/api/session')).json()) as { csrf: string };
      return (await fetch('/_wharf/api/image?name=apps/web&ref=old', { method: 'DELETE', headers: { 'x-wharf-csrf': s.csrf } })).status;
    });
    assert.equal(status, 403);

    const admin = await open();
    await login(admin, ADMIN);
    await admin.goto(`${f.wharf.url}/#/repo/apps%2Fweb`);
    await admin.getByRole('button', { name: 'Delete tag old' }).click();
    await admin.getByRole('link', { name: 'old' }).waitFor({ state: 'detached', ...WAIT });
    const tags = await request(`${f.wharf.url}/v2/apps/web/tags/list`, { headers: { authorization: `Basic ${Buffer.from(`${ADMIN.username}:${ADMIN.password}`).toString('base64')}` } });
    assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['1.0']);
  });

  it('works with the keyboard alone and fits a phone-width window, light and dark', async () => {
    for (const colorScheme of ['light', 'dark'] as const) {
      const context = await browser.newContext({ viewport: { width: 390, height: 800 }, colorScheme });
      contexts.push(context);
      const page = await context.newPage();
      page.on('request', (r) => {
        if (!r.url().startsWith(f.wharf.url)) foreign.push(r.url());
      });
      await page.goto(`${f.wharf.url}/#/login`);
      await page.getByLabel('User name').focus();
      await page.keyboard.type(READER.username);
      await page.keyboard.press('Tab');
      await page.keyboard.type(READER.password);
      await page.keyboard.press('Enter');
      await page.getByRole('button', { name: 'Log out' }).waitFor(WAIT);
      // The search box has focus on the list page; type, then Tab to the first result and open it.
      await page.getByRole('searchbox', { name: 'Search' }).waitFor(WAIT);
      await page.keyboard.type('web');
      await page.getByText('1 repository').waitFor(WAIT);
      let focused = '';
      for (let i = 0; i < 12 && focused !== 'apps/web'; i++) {
        await page.keyboard.press('Tab');
        focused = await page.evaluate(() => document.activeElement?.textContent ?? '');
      }
      assert.equal(focused, 'apps/web', 'the result is reachable with Tab');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'apps/web' }).waitFor(WAIT);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone (${colorScheme})`);
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, colorScheme === 'dark' ? 'rgb(15, 19, 23)' : 'rgb(255, 255, 255)');
    }
  });

  it('the cache dashboard shows the hit ratio move after a pull', async () => {
    const page = await open();
    await login(page, READER);
    await page.getByRole('link', { name: 'Cache' }).click();
    const ratio = page.getByTestId('hit-ratio');
    await ratio.waitFor(WAIT);
    const card = () => document.querySelector('section[aria-labelledby="hit-h"]')?.textContent ?? '';
    const first = await page.evaluate(card);
    assert.equal((await pullManifest(f.wharf.url, 'library/alpine', '3', READER)).status, 200);
    assert.equal((await pullManifest(f.wharf.url, 'library/alpine', '3', READER)).status, 200);
    // The dashboard refreshes itself every few seconds.
    await page.waitForFunction((before) => document.querySelector('section[aria-labelledby="hit-h"]')?.textContent !== before, first, WAIT);
    assert.match(await page.evaluate(card), /\d+ of \d+ cache lookups/);
    assert.match((await ratio.textContent()) ?? '', /^\d+\.\d%$/);
    assert.deepEqual(foreign, [], 'no request left for another host');
  });
});
