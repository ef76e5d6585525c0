/** Debian's chromium driven by playwright-core: never a browser download. */
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { Credentials } from '../helpers/http.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 120_000 });
}

export interface OpenOptions {
  /** where each new context goes, for the test to close */
  contexts: BrowserContext[];
  /** every request for another host than `base` is recorded here (the UI must make none) */
  foreign: string[];
  clipboard?: boolean;
  viewport?: { width: number; height: number };
}

/** A fresh browser profile on the UI at `base`; dialogs (delete confirmations) are accepted. */
export async function openUi(browser: Browser, base: string, o: OpenOptions): Promise<Page> {
  const context = await browser.newContext(o.viewport ? { viewport: o.viewport } : {});
  o.contexts.push(context);
  if (o.clipboard) await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.on('request', (r) => {
    if (!r.url().startsWith(base)) o.foreign.push(r.url());
  });
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${base}/`);
  return page;
}

/** Logs in through the UI's form, as a person would. */
export async function logIn(page: Page, who: Credentials, wait: { timeout: number }): Promise<void> {
  await page.getByRole('link', { name: 'Log in' }).click();
  await page.getByLabel('User name').fill(who.username);
  await page.getByLabel('Password or token').fill(who.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor(wait);
}
