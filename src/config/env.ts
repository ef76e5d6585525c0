import type { z } from 'zod';
import { configSchema } from './schema.js';
import { childrenOf, elementOf, envSegment, inspect } from './walk.js';

export const ENV_PREFIX = 'WHARF_';
/** Names the loader itself reads; never overrides. */
const RESERVED = new Set(['WHARF_CONFIG']);

/** One scalar override: where it goes in the raw config and where it came from (for messages). */
export interface Assignment {
  path: Array<string | number>;
  value: string;
  source: string;
}

type Resolved = { path: Array<string | number> } | { container: true } | undefined;

/** Matches `tokens[i..]` against the schema under `schema`, backtracking over keys that share a prefix. */
function resolve(schema: z.ZodType, tokens: string[], i: number): Resolved {
  const node = inspect(schema);
  if (i === tokens.length) return node.kind === 'leaf' ? { path: [] } : { container: true };
  if (node.kind === 'array') {
    const t = tokens[i] as string;
    if (!/^\d+$/.test(t)) return undefined;
    const rest = resolve(elementOf(node), tokens, i + 1);
    return rest && 'path' in rest ? { path: [Number(t), ...rest.path] } : rest;
  }
  let container: Resolved;
  for (const [key, child] of childrenOf(node)) {
    const seg = envSegment(key).split('_');
    if (seg.every((s, k) => tokens[i + k] === s)) {
      const rest = resolve(child, tokens, i + seg.length);
      if (rest && 'path' in rest) return { path: [key, ...rest.path] };
      container ??= rest;
    }
  }
  return container;
}

/** Every scalar env name, list indexes as `<n>` (for "did you mean"). */
function envTemplates(): string[] {
  const out: string[] = [];
  const visit = (schema: z.ZodType, env: string): void => {
    const node = inspect(schema);
    if (node.kind === 'object') for (const [k, c] of childrenOf(node)) visit(c, `${env}_${envSegment(k)}`);
    else if (node.kind === 'array') visit(elementOf(node), `${env}_<n>`);
    else out.push(env);
  };
  visit(configSchema, 'WHARF');
  return out;
}

export function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number;
      row[j] = Math.min(cur + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] as number;
}

export function suggest(word: string, candidates: readonly string[]): string {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 4)) + 1;
  for (const c of candidates) {
    const [w, k] = [word.toLowerCase(), c.toLowerCase()];
    // a truncated name ("tagFresh") is as good a hint as a typo
    const d = w.length >= 4 && k.startsWith(w) ? 1 : distance(w, k);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

/**
 * Reads WHARF_* variables into assignments. Empty values count as unset (compose files often
 * declare `WHARF_X=` to mean "nothing"), but their names are still checked.
 */
export function envAssignments(env: Record<string, string | undefined>): { assignments: Assignment[]; problems: string[] } {
  const assignments: Assignment[] = [];
  const problems: string[] = [];
  for (const [name, value] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
    if (!name.startsWith(ENV_PREFIX) || RESERVED.has(name)) continue;
    const found = resolve(configSchema, name.slice(ENV_PREFIX.length).split('_'), 0);
    if (found && 'path' in found) {
      if (value !== undefined && value !== '') assignments.push({ path: found.path, value, source: name });
    } else if (found) {
      problems.push(`${name}: only single values can be set from the environment (set its fields, e.g. ${name}_…)`);
    } else {
      problems.push(`${name}: unknown variable${suggest(name.replace(/_\d+(?=_|$)/g, '_<n>'), envTemplates())}`);
    }
  }
  return { assignments, problems };
}
