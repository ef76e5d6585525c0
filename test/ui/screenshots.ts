/**
 * Screenshots of the web UI from a real run (wharf + Distribution upstream, seeded by the test fixture),
 * written to docs/ui/ for the README: `npx tsx test/ui/screenshots.ts` (or name some, e.g. `… cache-dark.png`, to
 * write only those). Uses Debian's chromium.
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './browser.js';
import { ADMIN, pullManifest, READER, startUiFixture } from './fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUT = `${ROOT}docs/ui`;

execFileSync('npx', ['tsx', 'tools/build-ui.ts'], { cwd: ROOT, stdio: 'inherit' });
await mkdir(OUT, { recursive: true });
const f = await startUiFixture();
const browser = await launchChromium();
try {
  for (let i = 0; i < 3; i++) await pullManifest(f.wharf.url, 'library/alpine', '3', READER);
  const only = process.argv.slice(2);
  const shots: Array<{ file: string; hash: string; scheme: 'light' | 'dark'; width: number; ready: string; fullPage?: boolean }> = [
    { file: 'repositories.png', hash: '#/', scheme: 'light', width: 1100, ready: 'apps/multi' },
    { file: 'image.png', hash: '#/image/apps%2Fmulti/2.0', scheme: 'light', width: 1100, ready: 'Platforms' },
    { file: 'image-config-dark.png', hash: '#/image/apps%2Fweb/1.0', scheme: 'dark', width: 1100, ready: 'Config' },
    { file: 'cache-dark.png', hash: '#/cache', scheme: 'dark', width: 1100, ready: 'library/alpine', fullPage: true },
    { file: 'repository-phone.png', hash: '#/repo/apps%2Fweb', scheme: 'light', width: 390, ready: '1.0' },
  ];
  for (const s of shots.filter((x) => only.length === 0 || only.includes(x.file))) {
    const context = await browser.newContext({ viewport: { width: s.width, height: 760 }, colorScheme: s.scheme });
    const page = await context.newPage();
    await page.goto(`${f.wharf.url}/`);
    await page.getByRole('link', { name: 'Log in' }).click();
    await page.getByLabel('User name').fill(ADMIN.username);
    await page.getByLabel('Password or token').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor();
    await page.goto(`${f.wharf.url}/${s.hash}`);
    await page.getByText(s.ready, { exact: true }).first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: `${OUT}/${s.file}`, fullPage: s.fullPage ?? s.width < 500 });
    await context.close();
    console.log(`docs/ui/${s.file}`);
  }
} finally {
  await browser.close();
  await f.stop();
}
