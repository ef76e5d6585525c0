import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { copy } from '../helpers/skopeo.js';
import { tempDir } from '../helpers/tmp.js';
import { MB, type BenchContext } from './context.js';
import type { BenchImage } from './images.js';
import { row, type Row } from './report.js';
import { KINDS, startTarget, type TargetKind, type TargetOptions } from './setup.js';

const run = promisify(execFile);

/**
 * `skopeo copy docker://… dir:…` (the whole index with --all); milliseconds from spawn to exit. The disk
 * is synced first, so no pull is timed while the previous one's files (hundreds of MiB, from whichever
 * mirror ran before) are still being written back.
 */
export async function skopeoPull(base: string, img: BenchImage): Promise<number> {
  const dir = await tempDir('wharf-bench-pull-');
  try {
    await run('sync');
    const started = performance.now();
    await copy(`docker://${new URL(base).host}/${img.repo}:${img.tag}`, `dir:${dir.path}/img`, { all: img.index, timeoutMs: 300_000 });
    return performance.now() - started;
  } finally {
    await dir.cleanup();
  }
}

/**
 * One cold pull (the image is in no cache) through a fresh mirror, which is stopped and removed afterwards.
 * Unless `firstPull`, the mirror first serves the small unrelated warm-up image, as a mirror in service has
 * served something before: a new Node process runs its first requests as unoptimised code (wharf's first
 * pull costs it ~0.6 s more CPU than later ones), which a long-running mirror pays once, not per pull.
 */
export async function coldPullThrough(ctx: BenchContext, kind: TargetKind, img: BenchImage, firstPull = false, opts: TargetOptions = {}): Promise<number> {
  const t = await startTarget(kind, ctx.hub.link, opts);
  try {
    if (!firstPull) await skopeoPull(t.url, ctx.images.warmup);
    return await skopeoPull(t.url, img);
  } catch (e) {
    throw new Error(`${kind}: ${(e as Error).message}`);
  } finally {
    await t.stop();
  }
}

const ATTEMPTS = 3;

/**
 * A timed pull that may fail (Distribution's proxy mode now and then ends a blob early: `unexpected EOF`):
 * each failure is counted and reported, and the pull repeated with a fresh mirror, up to ATTEMPTS times;
 * after that the sample is missing (NaN), so one mirror's bad pulls do not cost the scenario its figures.
 */
export async function timedPull(ctx: BenchContext, who: string, failures: Map<string, string[]>, pull: () => Promise<number>): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await pull();
    } catch (e) {
      const msg = (e as Error).message;
      ctx.log(`${who}: pull failed (attempt ${attempt} of ${ATTEMPTS}): ${msg.slice(0, 300)}`);
      failures.set(who, [...(failures.get(who) ?? []), msg.replace(/\s+/g, ' ').slice(-120)]);
      if (attempt >= ATTEMPTS) return NaN;
    }
  }
}

/** Samples that exist (a pull that failed every attempt has none). */
export function measured(times: Record<string, number[]>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, v.filter(Number.isFinite)]));
}

const LINKS: Array<{ label: string; rate: number | undefined }> = [
  { label: 'unthrottled', rate: undefined },
  { label: '100 MB/s upstream link', rate: 100 * MB },
];

/**
 * 3. Cold pull wall time of each image with skopeo: through a fresh wharf, a fresh Distribution, and
 * directly from the upstream over the same (counted, possibly throttled) link.
 */
export async function coldPulls(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const imgs = [ctx.images.big256, ctx.images.big1g, ctx.images.layers20, ctx.images.index];
  for (const link of LINKS) {
    ctx.hub.counter.throttle(link.rate);
    try {
      for (const img of imgs) {
        const times: Record<string, number[]> = { wharf: [], distribution: [], direct: [] };
        const failures = new Map<string, string[]>();
        for (let i = 0; i < ctx.reps; i++) {
          for (const k of KINDS) times[k]!.push((await timedPull(ctx, k, failures, () => coldPullThrough(ctx, k, img))) / 1000);
          times.direct!.push((await timedPull(ctx, 'direct', failures, () => skopeoPull(ctx.hub.link.url, img))) / 1000);
          ctx.log(`cold pull ${img.label}, ${link.label}, rep ${i + 1}: ${Object.entries(times).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(2)} s`).join(', ')}`);
        }
        const r = row({ scenario: `3. Cold pull (skopeo), ${link.label}`, measure: img.label, unit: 's', values: measured(times), ratios: [['wharf', 'distribution'], ['wharf', 'direct']] });
        if (failures.size > 0) r.note = failureNote(failures);
        const vsPeer = r.ratios['wharf/distribution'] ?? Infinity;
        const vsDirect = r.ratios['wharf/direct'] ?? Infinity;
        r.target =
          link.rate === undefined
            ? { text: '≤ 0.8× Distribution', met: vsPeer <= 0.8 }
            : { text: '≤ 0.8× Distribution, ≤ 1.10× direct', met: vsPeer <= 0.8 && vsDirect <= 1.1 };
        rows.push(r);
      }
    } finally {
      ctx.hub.counter.throttle(undefined);
    }
  }
  rows.push(await firstPullAfterStart(ctx));
  return rows;
}

export function failureNote(failures: Map<string, string[]>): string {
  return [...failures].map(([who, msgs]) => `${who}: ${msgs.length} failed pull attempt(s), each repeated with a fresh mirror up to ${ATTEMPTS} times (${msgs[0]})`).join('; ');
}

/** The same cold pull as the process's very first one (no warm-up pull): what a restart costs the next pull. */
async function firstPullAfterStart(ctx: BenchContext): Promise<Row> {
  const img = ctx.images.layers20;
  const times: Record<string, number[]> = { wharf: [], distribution: [], direct: [] };
  const failures = new Map<string, string[]>();
  for (let i = 0; i < ctx.reps; i++) {
    for (const k of KINDS) times[k]!.push((await timedPull(ctx, k, failures, () => coldPullThrough(ctx, k, img, true))) / 1000);
    times.direct!.push((await timedPull(ctx, 'direct', failures, () => skopeoPull(ctx.hub.link.url, img))) / 1000);
    ctx.log(`first pull after start, ${img.label}, rep ${i + 1}: ${Object.entries(times).map(([k, v]) => `${k} ${v.at(-1)!.toFixed(2)} s`).join(', ')}`);
  }
  const r = row({ scenario: '3. Cold pull (skopeo), unthrottled', measure: `${img.label}, the mirror process's first pull`, unit: 's', values: measured(times), ratios: [['wharf', 'distribution'], ['wharf', 'direct']] });
  if (failures.size > 0) r.note = failureNote(failures);
  return r;
}
