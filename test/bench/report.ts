import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import { median } from './measure.js';

/**
 * Who a figure belongs to: the two mirrors, and the references they are held against (`disk`: wharf on the
 * filesystem, beside rows whose wharf runs on object storage).
 */
export type Subject = 'wharf' | 'distribution' | 'disk' | 'nginx' | 'direct';
const SUBJECTS: Subject[] = ['wharf', 'distribution', 'disk', 'nginx', 'direct'];

export interface Series {
  median: number;
  samples: number[];
}

export interface Target {
  /** e.g. "≥ 1.0× Distribution" */
  text: string;
  met: boolean;
}

/** One measured quantity, for every subject it was measured on. */
export interface Row {
  scenario: string;
  measure: string;
  unit: string;
  values: Partial<Record<Subject, Series>>;
  /** Named ratios, e.g. { 'wharf/distribution': 1.4 }. */
  ratios: Record<string, number>;
  target?: Target;
  note?: string;
}

export function series(samples: number[]): Series {
  return { median: median(samples), samples };
}

export function row(r: Omit<Row, 'ratios' | 'values'> & { values: Partial<Record<Subject, number[]>>; ratios?: Array<[Subject, Subject]> }): Row {
  const values: Partial<Record<Subject, Series>> = {};
  for (const [k, v] of Object.entries(r.values) as Array<[Subject, number[]]>) if (v.length > 0) values[k] = series(v);
  const ratios: Record<string, number> = {};
  for (const [a, b] of r.ratios ?? []) {
    const x = values[a]?.median;
    const y = values[b]?.median;
    if (x !== undefined && y !== undefined && y !== 0) ratios[`${a}/${b}`] = x / y;
  }
  return { ...r, values, ratios };
}

function fmt(v: number, unit: string): string {
  if (unit === 's') return v.toFixed(2);
  if (unit === 'MiB/s' || unit === 'req/s') return v.toFixed(0);
  if (unit === 'MiB' || unit === 'ms') return v >= 100 ? v.toFixed(0) : v.toFixed(1);
  return Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(2);
}

function cell(s: string): string {
  return s.replace(/\s+/g, ' ').replace(/\|/g, '\\|').trim();
}

const HEAD: Record<Subject, string> = { wharf: 'wharf', distribution: 'Distribution 2.8', disk: 'wharf on disk', nginx: 'nginx', direct: 'direct' };

export function renderTable(rows: Row[]): string {
  const lines = ['| Scenario | Measure (median) | wharf | Distribution 2.8 proxy | reference | wharf ÷ Distribution | target | met |', '|---|---|---|---|---|---|---|---|'];
  let last = '';
  for (const r of rows) {
    const v = (s: Subject): string => (r.values[s] ? fmt(r.values[s].median, r.unit) : '–');
    const ref = (['disk', 'nginx', 'direct'] as Subject[])
      .filter((s) => r.values[s])
      .map((s) => {
        const ratio = r.ratios[`wharf/${s}`];
        return `${HEAD[s]} ${v(s)}${ratio !== undefined ? ` (wharf ${ratio.toFixed(2)}×)` : ''}`;
      })
      .join('; ');
    const ratio = r.ratios['wharf/distribution'];
    const met = r.target === undefined ? '' : r.target.met ? 'yes' : '**no**';
    lines.push(
      `| ${r.scenario === last ? '' : cell(r.scenario)} | ${cell(`${r.measure}${r.unit ? ` (${r.unit})` : ''}`)} | ${v('wharf')} | ${v('distribution')} | ${cell(ref || '–')} | ${ratio === undefined ? '–' : `${ratio.toFixed(2)}×`} | ${cell(r.target?.text ?? '')} | ${met} |`,
    );
    last = r.scenario;
  }
  return lines.join('\n');
}

function version(cmd: string, args: string[], pattern: RegExp): string {
  // Some tools (nginx -v) print their version on stderr.
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return pattern.exec(out)?.[1] ?? (out.trim().split('\n')[0] || 'unknown');
}

export function environment(): Record<string, unknown> {
  const require = createRequire(import.meta.url);
  const pkg = (name: string): string => (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    /* not a checkout */
  }
  return {
    machine: {
      cpus: availableParallelism(),
      cpu: cpus()[0]?.model.trim() ?? 'unknown',
      memGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
    },
    versions: {
      node: process.version,
      wharf: `${(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version} (${commit})`,
      distribution: version('docker-registry', ['--version'], /(v?\d+\.\d+\.\d+\S*)/),
      nginx: version('nginx', ['-v'], /nginx\/(\S+)/),
      skopeo: version('skopeo', ['--version'], /version (\S+)/),
      curl: version('curl', ['--version'], /curl (\S+)/),
      autocannon: pkg('autocannon'),
    },
  };
}

export { SUBJECTS };
