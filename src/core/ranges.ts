import { ErrorCode, RegistryError } from '../oci/index.js';
import type { ByteRange } from '../store/types.js';
import type { RangeRequest } from './types.js';

/** Resolves a requested range against the blob size; throws RANGE_INVALID (416) when unsatisfiable. */
export function resolveRange(req: RangeRequest, size: number): ByteRange {
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
