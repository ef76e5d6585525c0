/**
 * Screenshots of the web UI from a real run (wharf + Distribution upstream, seeded by the test fixture),
 * written to docs/ui/ for the README: `npx tsx test/ui/screenshots.ts` (or name some, e.g. `… cache-dark.png`, to
 * write only those). Uses Debian's chromium.
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { basicHeader, request } from '../helpers/http.js';
import { launchChromium, logIn } from './browser.js';
import { ADMIN, pullManifest, READER, startUiFixture } from './fixture.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OUT = `${ROOT}docs/ui`;

execFileSync('npx', ['tsx', 'tools/build-ui.ts'], { cwd: ROOT, stdio: 'inherit' });
await mkdir(OUT, { recursive: true });
const f = await startUiFixture();
const browser = await launchChromium();
try {
  for (let i = 0; i < 3; i++) await pullManifest(f.wharf.url, 'library/alpine', '3', READER);
  for (let i = 0; i < 2; i++) await pullManifest(f.wharf.url, 'apps/web', '1.0', READER);
  await pullManifest(f.wharf.url, 'apps/multi', '2.0', READER);
  // The repositories list is a snapshot rebuilt once it is 3 s old: let it take in the pulls and the mirrored repository.
  await new Promise((r) => setTimeout(r, 3500));
  // A verify, then a gc dry run, for the Maintenance page to show (the latest, with its report).
  for (const kind of ['verify', 'gc']) {
    const started = await request(`${f.wharf.url}/_wharf/api/jobs`, {
      method: 'POST',
      headers: { authorization: basicHeader(ADMIN), 'x-wharf-csrf': 'screenshots', 'content-type': 'application/json' },
      body: JSON.stringify({ kind, dryRun: true }),
    });
    const { id } = JSON.parse(started.body.toString()) as { id: string };
    for (let i = 0; i < 600; i++) {
      const job = await request(`${f.wharf.url}/_wharf/api/jobs?id=${id}`, { headers: { authorization: basicHeader(ADMIN) } });
      if ((JSON.parse(job.body.toString()) as { state: string }).state !== 'running') break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const only = process.argv.slice(2);
  const shots: Array<{ file: string; hash: string; scheme: 'light' | 'dark'; width: number; ready: string; fullPage?: boolean }> = [
    { file: 'repositories.png', hash: '#/', scheme: 'light', width: 1100, ready: 'apps/multi' },
    { file: 'image.png', hash: '#/image/apps%2Fmulti/2.0', scheme: 'light', width: 1100, ready: 'Platforms' },
    { file: 'image-config-dark.png', hash: '#/image/apps%2Fweb/1.0', scheme: 'dark', width: 1100, ready: 'Config' },
    { file: 'cache-dark.png', hash: '#/cache', scheme: 'dark', width: 1100, ready: 'library/alpine', fullPage: true },
    { file: 'maintenance.png', hash: '#/maintenance', scheme: 'light', width: 1100, ready: 'gc (dry run): succeeded' },
    { file: 'repository-phone.png', hash: '#/repo/apps%2Fweb', scheme: 'light', width: 390, ready: '1.0' },
  ];
  for (const s of shots.filter((x) => only.length === 0 || only.includes(x.file))) {
    const context = await browser.newContext({ viewport: { width: s.width, height: 760 }, colorScheme: s.scheme });
    const page = await context.newPage();
    await page.goto(`${f.wharf.url}/`);
    await logIn(page, ADMIN, { timeout: 30_000 });
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
