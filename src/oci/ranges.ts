/** Byte-range arithmetic of RFC 9110 §14, pure: core resolves blob reads with it, http answers multi-range requests. */
import { ErrorCode, RegistryError } from './errors.js';

/** `bytes=a-b | a- | -n` as requested (structurally core's RangeRequest). */
export interface RangeSpec {
  start?: number;
  end?: number;
  /** bytes=-N */
  suffix?: number;
}

/** An inclusive byte range within a blob (structurally store's ByteRange). */
export interface ResolvedRange {
  start: number;
  end: number;
}

/** Resolves a requested range against the blob size; throws RANGE_INVALID (416) when unsatisfiable. */
export function resolveRange(req: RangeSpec, size: number): ResolvedRange {
  let start: number;
  let end: number;
  if (req.suffix !== undefined) {
    if (req.suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - req.suffix);
    end = size - 1;
  } else {
    start = req.start ?? 0;
    end = req.end === undefined ? size - 1 : Math.min(req.end, size - 1);
  }
  if (start >= size || start > end) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError(ErrorCode.RANGE_INVALID, 'requested range not satisfiable', { headers: { 'Content-Range': `bytes */${size}` } });
}

/** More ranges than this in one request get the whole blob (each part costs a header). */
export const MAX_RANGES = 64;

/**
 * A multi-range request (`bytes=0-1,3-4`) resolved against the blob size, as Go's http.ServeContent
 * (hence Distribution) does: unsatisfiable ranges are dropped, and none left is 416. Answers undefined —
 * send the whole blob with 200, which RFC 9110 §14.2 allows — when the parts would cost more than the
 * blob (more bytes in total, or more than MAX_RANGES parts), or overlap or go backwards (they are cut
 * from one pass over the blob).
 */
export function resolveRanges(reqs: readonly RangeSpec[], size: number): ResolvedRange[] | undefined {
  const ranges: ResolvedRange[] = [];
  for (const r of reqs) {
    try {
      ranges.push(resolveRange(r, size));
    } catch (e) {
      if (!(e instanceof RegistryError)) throw e;
    }
  }
  if (ranges.length === 0) throw unsatisfiable(size);
  if (ranges.length > MAX_RANGES) return undefined;
  const total = ranges.reduce((n, r) => n + r.end - r.start + 1, 0);
  if (total > size) return undefined;
  for (let i = 1; i < ranges.length; i++) if (ranges[i]!.start <= ranges[i - 1]!.end) return undefined;
  return ranges;
}
