/**
 * `make bench`: wharf (production build) and CNCF Distribution 2.8 in proxy mode in front of the same
 * real upstream registry on loopback, with nginx and direct pulls as physical references. Prints a
 * table, writes test/bench/results.json and refreshes the table in README.md (between bench markers).
 *
 * BENCH_REPS (default 3) repetitions per timed figure; BENCH_ONLY=1,3 runs only those scenarios
 * (`extra`, `notify`: those extras) and merges their rows into results.json and README's table, keeping the
 * other scenarios' rows from the run that made them (each partial run is listed under `partialRuns`);
 * BENCH_CPU_PROF=<dir> starts wharf with --cpu-prof.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { basicAuthUpstream } from './basic-auth.bench.js';
import { warmBlobThroughput } from './blob-throughput.bench.js';
import { concurrentColdPulls } from './coalescing.bench.js';
import { coldPulls } from './cold-pull.bench.js';
import type { BenchContext, Images } from './context.js';
import { bigImage, indexImage, layeredImage, MiB } from './images.js';
import { manifestThroughput } from './manifests.bench.js';
import { peakRss } from './memory.bench.js';
import { notifyLatency } from './notify.bench.js';
import { startNginx, type Server } from './processes.js';
import { objectStorage } from './s3.bench.js';
import { environment, renderTable, type Row } from './report.js';
import { KINDS, startHub, startTarget, type Hub, type Target, type TargetKind } from './setup.js';
import { upstream429, type Figures } from './throttle.bench.js';
import { warmPulls } from './warm-pulls.bench.js';

const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
const BEGIN = '<!-- bench:table:begin -->';
const END = '<!-- bench:table:end -->';

interface Scenario {
  id: string;
  /** Needs the long-running warm mirrors. */
  warm: boolean;
  timeoutMs: number;
  /** Compares with nginx serving the layer files (so nginx is needed only when such a scenario runs). */
  nginx?: boolean;
  run(ctx: BenchContext): Promise<Row[]>;
}

const SCENARIOS: Scenario[] = [
  { id: '1', warm: true, nginx: true, timeoutMs: 180_000, run: warmBlobThroughput },
  { id: '2', warm: true, timeoutMs: 120_000, run: manifestThroughput },
  { id: '5', warm: true, timeoutMs: 120_000, run: warmPulls },
  { id: '3', warm: false, timeoutMs: 720_000, run: coldPulls },
  { id: '4', warm: false, timeoutMs: 180_000, run: concurrentColdPulls },
  { id: '6', warm: false, timeoutMs: 240_000, run: peakRss },
  // Warm: the filesystem wharf beside the S3 ones for the same warm GETs.
  { id: '7', warm: true, timeoutMs: 900_000, run: objectStorage },
];

/** What results.json holds (the fields a partial run reads back to merge into). */
interface Results {
  date: string;
  tookSeconds: number;
  repetitions: number;
  results: Row[];
  extras: Array<{ title: string; byKind: Record<string, string | Record<string, string>> }>;
  errors: Record<string, string>;
  partialRuns?: PartialRun[];
  [key: string]: unknown;
}

/** A BENCH_ONLY run merged into the results of an earlier run. */
interface PartialRun {
  only: string[];
  date: string;
  tookSeconds: number;
  repetitions: number;
  /** 1-minute load average when the run started and ended: other work on the machine shows here. */
  load: [number, number];
  wharf: string;
}

const scenarioId = (r: Row): string => String(parseInt(r.scenario, 10));

const log = (msg: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timer = new Promise<never>((_r, reject) => {
    t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

function renderExtras(extras: Array<{ title: string; byKind: Map<TargetKind, Figures | string> }>): string {
  const lines = ['| Scenario | Measure | wharf | Distribution 2.8 proxy |', '|---|---|---|---|'];
  for (const e of extras) {
    const labels = [...new Set([...e.byKind.values()].flatMap((f) => (typeof f === 'string' ? ['result'] : [...f.keys()])))];
    labels.forEach((label, i) => {
      const cells = KINDS.map((k) => {
        const f = e.byKind.get(k);
        return f === undefined ? '–' : typeof f === 'string' ? (i === 0 ? f : '') : (f.get(label) ?? '');
      });
      lines.push(`| ${i === 0 ? e.title : ''} | ${label} | ${cells.map((c) => c.replace(/\s+/g, ' ').replace(/\|/g, '\\|')).join(' | ')} |`);
    });
  }
  return lines.join('\n');
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** An extra's figures as results.json keeps them, back into what renderExtras takes. */
function figuresOf(byKind: Record<string, string | Record<string, string>>): Map<TargetKind, Figures | string> {
  return new Map(Object.entries(byKind).map(([k, f]) => [k as TargetKind, typeof f === 'string' ? f : new Map(Object.entries(f))]));
}

async function main(): Promise<void> {
  if (!existsSync(DIST)) throw new Error('dist/cli.js is missing: run `make build` (make bench does)');
  const started = Date.now();
  const loadAtStart = loadavg()[0]!;
  const reps = Number(process.env.BENCH_REPS ?? 3);
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
  const selected = SCENARIOS.filter((s) => only === undefined || only.includes(s.id));
  const stops: Array<() => Promise<void>> = [];
  const cleanup = async (): Promise<void> => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

  const rows: Row[] = [];
  const errors: Record<string, string> = {};
  const extras: Array<{ title: string; byKind: Map<TargetKind, Figures | string> }> = [];
  try {
    log('generating images (incompressible layers written to a temp dir)');
    const dir: TempDir = await tempDir('wharf-bench-images-');
    stops.push(() => dir.cleanup());
    const images: Images = {
      big256: await bigImage('256 MiB, 1 layer', 'bench/big256', dir.path, 256 * MiB),
      big1g: await bigImage('1 GiB, 1 layer', 'bench/big1g', dir.path, 1024 * MiB),
      layers20: layeredImage('20 layers of 1–4 MiB', 'bench/layers20', 20),
      index: indexImage('two-platform index', 'bench/multi'),
      warmup: layeredImage('warm-up image, 10 layers of 1–4 MiB', 'bench/warmup', 10),
    };
    log('starting the upstream (Distribution 2.8 → counting proxy → byte counter) and pushing');
    const hub: Hub = await startHub();
    stops.push(() => hub.stop());
    for (const img of Object.values(images)) await img.push(hub.registry.url);
    let nginx: Server | undefined;
    if (selected.some((s) => s.nginx)) {
      const n = await startNginx(dir.path);
      stops.push(() => n.stop());
      nginx = n;
    }

    let warm: Record<TargetKind, Target> | undefined;
    const ctx = (): BenchContext => ({ hub, images, reps, warm: warm!, nginx, log });
    for (const s of selected) {
      if (s.warm && warm === undefined) {
        log('starting the warm mirrors');
        const w = { wharf: await startTarget('wharf', hub.link), distribution: await startTarget('distribution', hub.link) };
        stops.push(async () => {
          await w.wharf.stop();
          await w.distribution.stop();
        });
        warm = w;
      }
      log(`scenario ${s.id}`);
      try {
        rows.push(...(await withTimeout(s.run(ctx()), s.timeoutMs, `scenario ${s.id}`)));
      } catch (err) {
        errors[s.id] = (err as Error).message;
        log(`scenario ${s.id} failed: ${(err as Error).stack ?? String(err)}`);
        hub.counter.throttle(undefined);
      }
    }
    if (only === undefined || only.includes('extra')) {
      log('extra: upstream 429');
      const e429 = { title: 'Upstream answers 429 to manifest requests', byKind: new Map<TargetKind, Figures | string>() };
      for (const k of KINDS) e429.byKind.set(k, await withTimeout(upstream429(ctx(), k), 60_000, '429').catch((e: Error) => `error: ${e.message}`));
      extras.push(e429);
      log('extra: Basic-auth upstream');
      const basic = { title: 'Upstream with Basic auth (htpasswd) only', byKind: new Map<TargetKind, Figures | string>() };
      try {
        for (const [k, f] of await withTimeout(basicAuthUpstream(KINDS), 90_000, 'basic auth')) basic.byKind.set(k, f);
      } catch (e) {
        for (const k of KINDS) basic.byKind.set(k, `error: ${(e as Error).message}`);
      }
      extras.push(basic);
    }
    if (only === undefined || only.includes('notify')) {
      log('extra: webhooks with an endpoint that never answers');
      const notify = { title: 'Webhooks: an endpoint that never answers (wharf only)', byKind: new Map<TargetKind, Figures | string>() };
      notify.byKind.set('wharf', await withTimeout(notifyLatency(), 180_000, 'notify').catch((e: Error) => `error: ${e.message}`));
      extras.push(notify);
    }
  } finally {
    await cleanup();
  }

  const tookS = Math.round((Date.now() - started) / 1000);
  const load: [number, number] = [round2(loadAtStart), round2(loadavg()[0]!)];
  const env = environment();
  const ran: Results['extras'] = extras.map((e) => ({ title: e.title, byKind: Object.fromEntries([...e.byKind].map(([k, f]) => [k, typeof f === 'string' ? f : Object.fromEntries(f)])) }));
  let out: Results = { date: new Date(started).toISOString(), command: 'make bench', tookSeconds: tookS, repetitions: reps, load, ...env, results: rows, extras: ran, errors };
  if (only !== undefined && existsSync(RESULTS)) {
    // A partial run: its rows replace that scenario's rows of the last full run; everything else stays.
    const prev = JSON.parse(await readFile(RESULTS, 'utf8')) as Results;
    const ids = new Set(selected.map((s) => s.id));
    const titles = new Set(ran.map((e) => e.title));
    const partial: PartialRun = { only, date: out.date, tookSeconds: tookS, repetitions: reps, load, wharf: (env.versions as { wharf: string }).wharf };
    out = {
      ...prev,
      results: [...prev.results.filter((r) => !ids.has(scenarioId(r))), ...rows],
      extras: [...prev.extras.filter((e) => !titles.has(e.title)), ...ran],
      errors: { ...Object.fromEntries(Object.entries(prev.errors).filter(([id]) => !ids.has(id))), ...errors },
      partialRuns: [...(prev.partialRuns ?? []).filter((p) => !p.only.every((id) => only.includes(id))), partial],
    };
  }
  // In the issue's order (scenarios run in another: warm ones first, while the warm mirrors are up).
  out.results.sort((a, b) => parseInt(a.scenario, 10) - parseInt(b.scenario, 10));
  const table = renderTable(out.results);
  const extraTable = out.extras.length > 0 ? renderExtras(out.extras.map((e) => ({ title: e.title, byKind: figuresOf(e.byKind) }))) : '';
  const failed = Object.entries(errors).map(([id, e]) => `scenario ${id} failed: ${e.split('\n')[0]}`);
  const notes = out.results.filter((r) => r.note).map((r) => `${r.scenario} — ${r.measure}: ${r.note}`);
  process.stdout.write(`\n${renderTable(rows)}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n\n${extraTable}\n${failed.join('\n')}\n`);
  await writeFile(RESULTS, `${JSON.stringify(out, null, 2)}\n`);
  log(`wrote ${RESULTS} (${tookS} s)`);
  const readme = await readFile(README, 'utf8');
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  // A partial run that failed leaves the table as it was (a full run rewrites it, failures noted, as always).
  if (a >= 0 && b > a && (only === undefined || failed.length === 0)) {
    const m = (out.machine ?? env.machine) as { cpus: number; cpu: string };
    const nodeVersion = (out.versions as { node?: string } | undefined)?.node ?? process.version;
    const stamp = [
      `Run of ${out.date.slice(0, 10)} on ${m.cpus} × ${m.cpu}, Node ${nodeVersion}, ${out.repetitions} repetitions, ${out.tookSeconds} s (\`test/bench/results.json\`)` +
        `${out.partialRuns?.length ? ';' : ':'}`,
      ...(out.partialRuns ?? []).map(
        (p, i, all) =>
          `scenario${p.only.length > 1 ? 's' : ''} ${p.only.join(', ')} from a run of ${p.date.slice(0, 10)} alone (\`BENCH_ONLY=${p.only.join(',')}\`, wharf ${p.wharf}, ${p.repetitions} repetitions, ${p.tookSeconds} s, 1-minute load average ${p.load[0]} at its start and ${p.load[1]} at its end)${i === all.length - 1 ? ':' : ';'}`,
      ),
    ].join('\n');
    const body = [stamp, '', table, '', ...notes.map((n) => `- ${n}`), '', extraTable].join('\n');
    await writeFile(README, `${readme.slice(0, a + BEGIN.length)}\n${body}\n${readme.slice(b)}`);
    log('refreshed the table in README.md');
  }
  if (failed.length > 0) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
