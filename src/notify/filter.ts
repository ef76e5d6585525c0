import type { NotifyEndpointConfig } from '../config/types.js';
import { repoMatcher } from '../oci/index.js';
import type { QueuedEvent } from './envelope.js';

/**
 * Whether an endpoint takes an event: Distribution's `ignoredmediatypes` and `ignore` (media types,
 * actions), then wharf's `repositories` globs, matched against the canonical key and the client name.
 */
export function endpointFilter(ep: Pick<NotifyEndpointConfig, 'ignoredmediatypes' | 'ignore' | 'repositories'>): (q: QueuedEvent) => boolean {
  const mediaTypes = new Set([...ep.ignoredmediatypes, ...ep.ignore.mediatypes]);
  const actions = new Set(ep.ignore.actions);
  const repos = ep.repositories && repoMatcher(ep.repositories);
  return (q) => {
    if (actions.has(q.event.action)) return false;
    const mt = q.event.target.mediaType;
    if (mt !== undefined && mediaTypes.has(mt)) return false;
    if (repos && !repos(q.key) && !repos(q.event.target.repository ?? '')) return false;
    return true;
  };
}
