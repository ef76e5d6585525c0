/**
 * `make bench`: wharf and CNCF Distribution 2.8 (proxy mode) in front of the same real upstream,
 * on loopback, one mirror at a time. Prints a markdown table and writes it to test/bench/RESULTS.md.
 */
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { pushImage } from '../helpers/oci-image.js';
import { basicAuthUpstream } from './basic-auth.bench.js';
import { bigBlob } from './blob.bench.js';
import { LOAD_CONNECTIONS, LOAD_SECONDS, manifestThroughput } from './manifests.bench.js';
import { MiB, type BenchImages, type Figures, type ScenarioContext } from './measure.js';
import { coldPull, concurrentColdPulls } from './pull.bench.js';
import { KINDS, renderReport, renderTable, type SectionResult } from './report.js';
import { bigImage, layeredImage, startHub, startTarget, WHARF_FRESHNESS_S, type Hub, type Target } from './setup.js';
import { upstream429 } from './throttle.bench.js';

const BUDGET_MS = 285_000;
const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url));

interface Scenario {
  title: string;
  timeoutMs: number;
  run(ctx: ScenarioContext): Promise<Figures>;
}

const SCENARIOS: Scenario[] = [
  { title: '1. One cold pull (3 layers × 8 MiB)', timeoutMs: 60_000, run: coldPull },
  { title: '2. 8 concurrent cold pulls of one image (3 × 8 MiB)', timeoutMs: 60_000, run: concurrentColdPulls },
  { title: `3. Manifest by tag, warm, autocannon ${LOAD_SECONDS} s × ${LOAD_CONNECTIONS} connections`, timeoutMs: LOAD_SECONDS * 1000 + 35_000, run: manifestThroughput },
  { title: '6. 64 MiB blob (brief: wharf; Distribution for reference)', timeoutMs: 90_000, run: bigBlob },
  // Last: wharf then holds back every request to that upstream for Retry-After, as it should.
  { title: '4. Upstream answers 429 to manifest requests', timeoutMs: 30_000, run: upstream429 },
];
const BASIC_TITLE = '5. Upstream with Basic auth (htpasswd) only';

const NOTES = [
  'Upstream: a real Distribution 2.8.2 (`docker-registry`) with token auth, credentials required (Docker Hub\'s shape); its token service is a Node process signing RS256 JWTs. Both mirrors are given the same username/password.',
  'Chain: mirror → TCP byte counter → fault proxy (counts requests, injects 429) → upstream registry; everything on 127.0.0.1, one mirror running at a time, each with an empty cache. Token requests go straight to the token service and are counted there.',
  '"Upstream bytes received" is every byte the upstream registry sent the mirror (headers, 401s and bodies), counted on the wire.',
  `wharf runs \`wharf serve\` (tsx) with tagFreshness ${WHARF_FRESHNESS_S}s (default 5m) so scenario 4 can pass it; in scenario 3 that means a revalidation every ${WHARF_FRESHNESS_S} s. Log level warn for wharf; access log off for Distribution.`,
  'Distribution: `proxy: { remoteurl, username, password }`, filesystem storage, no other tuning.',
  'Clients hash every body as it streams and check it against the pushed digest; a pull is manifest by tag, then config and layers one after another.',
  'autocannon runs in its own process; the byte counter, fault proxy and token service share the bench process. The machine has few cores, so the load generator, the mirror and the upstream compete for CPU: absolute figures are lower than on a server, the comparison is what matters.',
  'Scenario 4 runs last for each mirror: after an upstream 429, wharf holds back every request to that upstream until Retry-After has passed, which would otherwise fail the next scenario\'s cold pulls.',
  'wharf runs under tsx (TypeScript compiled in-process at start), which is part of its RSS baseline; a `make build` deployment would start smaller.',
  'RSS: VmRSS of the mirror process from /proc/<pid>/status, sampled every 100 ms while 8 clients pull the same uncached 64 MiB blob.',
];

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timer = new Promise<never>((_r, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

async function main(): Promise<void> {
  const started = Date.now();
  const date = new Date();
  const sections: SectionResult[] = [
    ...SCENARIOS.map((s) => ({ title: s.title, byKind: new Map() })),
    { title: BASIC_TITLE, byKind: new Map() },
  ];
  sections.sort((a, b) => a.title.localeCompare(b.title));
  const section = (title: string): SectionResult => sections.find((s) => s.title === title)!;

  let hub: Hub | undefined;
  let target: Target | undefined;
  let finished = false;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      await target?.stop().catch(() => undefined);
      await hub?.stop().catch(() => undefined);
    })());

  const report = async (complete: boolean): Promise<void> => {
    const table = renderTable(sections);
    process.stdout.write(`\n${table}\n\n`);
    await writeFile(RESULTS, renderReport({ date, tookMs: Date.now() - started, table, notes: NOTES, complete }));
    log(`wrote ${RESULTS}`);
  };

  // The whole run must stay under 5 minutes: past the budget, report what there is and stop.
  const watchdog = setTimeout(() => {
    if (finished) return;
    log(`over budget (${BUDGET_MS / 1000} s): reporting what was measured and stopping`);
    void (async () => {
      await report(false).catch(() => undefined);
      await cleanup();
      process.exit(1);
    })();
  }, BUDGET_MS);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    log('building images');
    const images: BenchImages = {
      one: layeredImage(3, 8 * MiB),
      many: layeredImage(3, 8 * MiB),
      tags: layeredImage(2, 4096),
      staleV1: layeredImage(1, 4096),
      staleV2: layeredImage(1, 4096),
      big1: bigImage(64 * MiB),
      big2: bigImage(64 * MiB),
    };
    log('starting the upstream and pushing images');
    hub = await startHub();
    const creds = { username: hub.link.username, password: hub.link.password };
    const up = hub.registry.registry.url;
    await pushImage(up, 'bench/one', 'v1', images.one.image, creds);
    await pushImage(up, 'bench/many', 'v1', images.many.image, creds);
    await pushImage(up, 'bench/tags', 'v1', images.tags.image, creds);
    await pushImage(up, 'bench/stale', 'v1', images.staleV1.image, creds);
    await pushImage(up, 'bench/stale', 'v2', images.staleV2.image, creds);
    await pushImage(up, 'bench/big1', 'v1', images.big1.image, creds);
    await pushImage(up, 'bench/big2', 'v1', images.big2.image, creds);

    for (const kind of KINDS) {
      log(`starting ${kind}`);
      try {
        target = await withTimeout(startTarget(kind, hub.link), 60_000, `starting ${kind}`);
      } catch (err) {
        for (const s of SCENARIOS) section(s.title).byKind.set(kind, err as Error);
        continue;
      }
      for (const s of SCENARIOS) {
        log(`${kind}: ${s.title}`);
        try {
          section(s.title).byKind.set(kind, await withTimeout(s.run({ target, hub, images }), s.timeoutMs, s.title));
        } catch (err) {
          section(s.title).byKind.set(kind, err as Error);
          hub.proxy.clearFaults();
        }
      }
      await target.stop();
      target = undefined;
    }

    log(BASIC_TITLE);
    try {
      const basic = await withTimeout(basicAuthUpstream(KINDS), 90_000, BASIC_TITLE);
      for (const [k, f] of basic) section(BASIC_TITLE).byKind.set(k, f);
    } catch (err) {
      for (const k of KINDS) section(BASIC_TITLE).byKind.set(k, err as Error);
    }
    finished = true;
    await cleanup();
    await report(true);
  } finally {
    finished = true;
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
