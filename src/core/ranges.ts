// The arithmetic lives in oci/ (pure protocol vocabulary) so that http/ can resolve multi-range requests too.
export { resolveRange } from '../oci/ranges.js';
