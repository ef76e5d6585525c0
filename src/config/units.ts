/**
 * Human-friendly durations and sizes used throughout the configuration.
 *
 * Durations become milliseconds. Accepted: '500ms', '30s', '5m', '2h', '7d', decimals ('1.5h') and
 * compounds ('1h30m'). A plain number (YAML `30`, env `"30"`) means SECONDS, because a bare `30` for a
 * timeout almost always means seconds to an operator and milliseconds would silently be 1000x too short.
 *
 * Sizes become bytes. Binary units KiB/MiB/GiB/TiB/PiB (powers of 1024), decimal units KB/MB/GB/TB/PB
 * (powers of 1000), 'B', case-insensitive, optional space ('50 GiB'). A plain number means BYTES.
 */

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  pib: 2 ** 50,
};

const NUMBER = /^\d+(?:\.\d+)?$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i;

export class UnitError extends Error {}

/** Parses a duration into milliseconds; throws UnitError with a message fit for a config problem. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new UnitError(`invalid duration ${String(value)}`);
    return Math.round(value * 1000);
  }
  const text = value.trim();
  if (NUMBER.test(text)) return Math.round(Number(text) * 1000);
  let total = 0;
  let consumed = 0;
  DURATION_PART.lastIndex = 0;
  for (let m = DURATION_PART.exec(text); m !== null; m = DURATION_PART.exec(text)) {
    total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
    consumed = DURATION_PART.lastIndex;
  }
  if (text === '' || consumed !== text.length) {
    throw new UnitError(`invalid duration "${value}" (use e.g. 500ms, 30s, 5m, 2h, 7d)`);
  }
  return Math.round(total);
}

/** Parses a size into bytes; throws UnitError with a message fit for a config problem. */
export function parseSize(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new UnitError(`invalid size ${String(value)}`);
    return value;
  }
  const text = value.trim();
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n;
  }
  const m = SIZE.exec(text);
  const factor = m ? SIZE_UNITS[(m[2] as string).toLowerCase()] : undefined;
  if (!m || factor === undefined) {
    throw new UnitError(`invalid size "${value}" (use e.g. 512MiB, 50GiB, 200GB or plain bytes)`);
  }
  const bytes = Math.round(Number(m[1]) * factor);
  if (!Number.isSafeInteger(bytes)) throw new UnitError(`size "${value}" is too large`);
  return bytes;
}

/** Renders milliseconds the way a user would write them (for defaults in docs and messages). */
export function formatDuration(ms: number): string {
  for (const [unit, factor] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= factor && ms % factor === 0) return `${ms / factor}${unit}`;
  }
  return `${ms}ms`;
}

/** Renders bytes with the largest binary unit that divides them exactly. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [['PiB', 2 ** 50], ['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}
