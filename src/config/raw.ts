import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { Assignment } from './env.js';

export type RawMap = Record<string, unknown>;

/** The config file could not be read at all (missing, unreadable): one clear line, not a problem list. */
export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`cannot read config file ${file}: ${reason}`);
    this.name = 'ConfigFileError';
  }
}

export function isMap(v: unknown): v is RawMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** YAML `key:` with nothing after it means "not set", as if the key were absent. */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (!isMap(v)) return v;
  const out: RawMap = {};
  for (const [k, val] of Object.entries(v)) if (val !== null) out[k] = dropNulls(val);
  return out;
}

export async function readYamlFile(file: string, problems: string[]): Promise<RawMap> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (e as Error).message;
    throw new ConfigFileError(file, reason);
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const at = err.linePos?.[0];
      const message = (err.message.split('\n')[0] ?? err.code).replace(/ at line \d+, column \d+:?$/, '');
      problems.push(`${file}${at ? `:${at.line}:${at.col}` : ''}: ${message}`);
    }
    return {};
  }
  const value = dropNulls(doc.toJS());
  if (value === undefined || value === null) return {};
  if (!isMap(value)) {
    problems.push(`${file}: the top level must be a mapping of options (listen:, upstreams:, …)`);
    return {};
  }
  return value;
}

/** Writes one override into the raw tree, creating maps and list items on the way. */
export function assign(root: RawMap, { path, value, source }: Assignment, problems: string[]): boolean {
  let cur: unknown = root;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i] as string | number;
    const last = i === path.length - 1;
    const nextIsIndex = typeof path[i + 1] === 'number';
    const where = path.slice(0, i).join('.') || 'the top level';
    if (typeof seg === 'number') {
      if (!Array.isArray(cur)) {
        problems.push(`${source}: cannot apply, ${where} is not a list`);
        return false;
      }
      if (seg > cur.length) {
        problems.push(`${source}: ${where} has ${cur.length} item(s); index ${seg} would leave a gap`);
        return false;
      }
      if (last) cur[seg] = value;
      else if (cur[seg] === undefined) cur[seg] = nextIsIndex ? [] : {};
      cur = cur[seg];
    } else {
      if (!isMap(cur)) {
        problems.push(`${source}: cannot apply, ${where} is not a mapping`);
        return false;
      }
      if (last) cur[seg] = value;
      else if (cur[seg] === undefined) cur[seg] = nextIsIndex ? [] : {};
      cur = cur[seg];
    }
  }
  return true;
}
