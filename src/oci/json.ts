/**
 * How deep JSON in a manifest may nest. Real manifests and indexes stay under 10 (index → descriptor →
 * platform → os.features); the bound keeps recursive readers (structuredClone, JSON.stringify, loggers)
 * far from the stack limit.
 */
export const MAX_JSON_DEPTH = 64;

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Whether the JSON text in `bytes` nests objects and arrays at most `max` deep, by one pass over the bytes
 * (strings skipped, escapes honoured), so it can be asked before JSON.parse. Malformed text is left for
 * the parser to reject: this only answers about depth.
 */
export function jsonDepthWithin(bytes: Uint8Array, max: number = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > max) return false;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    }
  }
  return true;
}

/** A JSON object whose every value is a string (OCI annotations), checked one level deep. */
export function isStringMap(v: unknown): v is Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  for (const k in v) if (typeof (v as Record<string, unknown>)[k] !== 'string') return false;
  return true;
}
