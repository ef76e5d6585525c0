import { isStringMap } from '../../oci/index.js';
import type { LinkRecord } from '../types.js';

/**
 * A link record as read back from a journal, a snapshot or Redis. Older wharf versions stored a pushed
 * manifest's `annotations` unchecked; anything but string → string (a deeply nested object included) is
 * dropped here, so no reader (gc, listing, referrers, structuredClone) ever recurses through it.
 */
export function storedLink(v: LinkRecord): LinkRecord {
  if (v.annotations === undefined || isStringMap(v.annotations)) return v;
  const { annotations: _dropped, ...rest } = v;
  return rest;
}
