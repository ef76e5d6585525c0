import { cpus, totalmem, release } from 'node:os';
import { availableParallelism } from 'node:os';
import type { Figures } from './measure.js';
import type { TargetKind } from './setup.js';

export const KINDS: TargetKind[] = ['wharf', 'distribution'];
const TITLES: Record<TargetKind, string> = { wharf: 'wharf', distribution: 'Distribution 2.8.2 proxy' };

/** A scenario's outcome per mirror: its figures, an error, or absent (not run for that mirror). */
export interface SectionResult {
  title: string;
  byKind: Map<TargetKind, Figures | Error>;
}

function cell(s: string): string {
  return s.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
}

export function renderTable(sections: SectionResult[]): string {
  const lines = [`| Scenario | Measure | ${KINDS.map((k) => TITLES[k]).join(' | ')} |`, `|---|---|${KINDS.map(() => '---').join('|')}|`];
  for (const s of sections) {
    const labels: string[] = [];
    for (const r of s.byKind.values()) if (!(r instanceof Error)) for (const l of r.keys()) if (!labels.includes(l)) labels.push(l);
    if (labels.length === 0) labels.push('result');
    labels.forEach((label, i) => {
      const cells = KINDS.map((k) => {
        const r = s.byKind.get(k);
        if (r === undefined) return 'not measured';
        if (r instanceof Error) return i === 0 ? `error: ${r.message.split('\n')[0] ?? ''}` : '';
        return r.get(label) ?? '';
      });
      lines.push(`| ${i === 0 ? cell(s.title) : ''} | ${cell(label)} | ${cells.map(cell).join(' | ')} |`);
    });
  }
  return lines.join('\n');
}

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `nproc ${availableParallelism()} (${cpu.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Linux ${release()}, Node ${process.version}`;
}

export function renderReport(opts: { date: Date; tookMs: number; table: string; notes: string[]; complete: boolean }): string {
  return [
    '# wharf benchmarks: wharf vs CNCF Distribution 2.8 in proxy mode',
    '',
    `- Date: ${opts.date.toISOString()}`,
    `- Machine: ${machine()}`,
    `- Command: \`make bench\` (runs \`npx tsx test/bench/run.ts\`); the run took ${(opts.tookMs / 1000).toFixed(0)} s${opts.complete ? '' : ' and was CUT SHORT (see errors)'}`,
    '',
    opts.table,
    '',
    '## How it was measured',
    '',
    ...opts.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}
