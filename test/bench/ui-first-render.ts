/**
 * `make bench` (UI part): the web UI's first render for a 10,000-repository, 100,000-tag catalog. The
 * metadata is written straight into an embedded store (no blobs: the list reads metadata only), wharf is
 * started on it, and Debian's chromium loads `/` until the first page of the repositories table shows.
 * Reports how long after start the catalog is scanned, the first render in a new browser profile, a reload
 * (warm), and a tag search over every repository. Target: first render < 1 s.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { EmbeddedMetadataStore } from '../../src/store/index.js';
import type { Digest } from '../../src/oci/index.js';
import { request } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';
import { startWharf } from '../helpers/wharf.js';
import { launchChromium } from '../ui/browser.js';

const REPOS = Number(process.env.BENCH_UI_REPOS ?? 10_000);
const TAGS = Number(process.env.BENCH_UI_TAGS_PER_REPO ?? 10);
const MEDIA = 'application/vnd.oci.image.manifest.v1+json';

const dir = await tempDir('wharf-bench-ui-');
try {
  const seedStart = performance.now();
  const meta = await EmbeddedMetadataStore.open(join(dir.path, 'meta'));
  const now = Date.now();
  // The journal commits in groups: writes issued together share one fsync.
  const BATCH = 200;
  for (let start = 0; start < REPOS; start += BATCH) {
    const ops: Array<Promise<unknown>> = [];
    for (let r = start; r < Math.min(REPOS, start + BATCH); r++) {
      const repo = `team${r % 100}/app-${r}`;
      ops.push(meta.markRepo(repo, { local: true }));
      for (let t = 0; t < TAGS; t++) {
        const digest = `sha256:${createHash('sha256').update(`${repo}:${t}`).digest('hex')}` as Digest;
        const size = 1000 + ((r * 31 + t) % 5000);
        ops.push(meta.link(repo, digest, { kind: 'manifest', size, origin: 'local', mediaType: MEDIA, linkedAt: now }));
        ops.push(meta.putTag(repo, `v${t}.0`, { digest, mediaType: MEDIA, size, checkedAt: now - r * 1000, origin: 'local' }));
      }
    }
    await Promise.all(ops);
  }
  await meta.close();
  const seeded = performance.now() - seedStart;
  const wharf = await startWharf({ dataDir: dir.path, config: { upstreams: [] }, startTimeoutMs: 120_000 });
  const browser = await launchChromium();
  try {
    // wharf scans the catalog once at start; how long until the API answers with all of it.
    let t = performance.now();
    for (let i = 0; ; i++) {
      const r = await request(`${wharf.url}/_wharf/api/repositories?perPage=1`);
      if (r.status === 200 && (JSON.parse(r.body.toString()) as { total: number }).total === REPOS) break;
      if (i > 1200) throw new Error('the catalog never showed every repository');
      await new Promise((res) => setTimeout(res, 50));
    }
    const primed = performance.now() - t;
    // A new browser profile (nothing cached) opening the UI.
    const page = await (await browser.newContext()).newPage();
    const firstRow = () => page.locator('table.repos tbody tr').first().waitFor({ timeout: 60_000 });
    t = performance.now();
    await page.goto(`${wharf.url}/`);
    await firstRow();
    const cold = performance.now() - t;
    const warm: number[] = [];
    for (let i = 0; i < 5; i++) {
      t = performance.now();
      await page.reload();
      await firstRow();
      warm.push(performance.now() - t);
    }
    t = performance.now();
    await page.getByRole('searchbox', { name: 'Search' }).fill('v9.0');
    await page.getByText(`${REPOS} repositories`).waitFor({ timeout: 60_000 });
    const search = performance.now() - t;
    warm.sort((a, b) => a - b);
    const result = {
      repositories: REPOS,
      tags: REPOS * TAGS,
      seedMs: Math.round(seeded),
      catalogAfterStartMs: Math.round(primed),
      firstRenderColdMs: Math.round(cold),
      firstRenderWarmMedianMs: Math.round(warm[Math.floor(warm.length / 2)]!),
      tagSearchMs: Math.round(search),
    };
    console.log(JSON.stringify(result, null, 2));
    console.log(`web UI first render, ${REPOS} repositories / ${REPOS * TAGS} tags: ${result.firstRenderColdMs} ms in a new browser profile (catalog scanned ${result.catalogAfterStartMs} ms after start), reload ${result.firstRenderWarmMedianMs} ms (target < 1000 ms); tag search ${result.tagSearchMs} ms`);
  } finally {
    await browser.close();
    await wharf.stop();
  }
} finally {
  await dir.cleanup();
}
