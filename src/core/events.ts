import type { CoreDeps } from './deps.js';
import type { EventSink, Namespaces, RegistryEvent, RegistryEventAction, RepoRef } from './types.js';

/**
 * Reports mirror work (content cached from an upstream, a tag that moved upstream) to the webhooks.
 * Background work answers no request, so nothing waits for it; a queue failure is logged.
 */
export function announce(d: Pick<CoreDeps, 'events' | 'namespaces' | 'logger'>, action: RegistryEventAction, repo: RepoRef, target: RegistryEvent['target']): void {
  const sink = d.events;
  if (!sink || !sink.wants(action)) return;
  const event: RegistryEvent = { action, repository: d.namespaces.displayName(repo.key), key: repo.key, target: { ...target, upstream: repo.upstream } };
  sink.emit([event]).catch((e: unknown) => d.logger.error({ action, err: (e as Error).message }, 'notifications: could not queue an event'));
}

/** What eviction or purge removed from one repository (by canonical key): a link to a manifest or blob, or a tag. */
export interface Removal {
  key: string;
  target: RegistryEvent['target'];
}

/**
 * `evict` / `purge` events for what was removed, one per tag and per manifest or blob link; the upstream is
 * the one the repository mirrors. Empty when no endpoint takes the action.
 */
export function removalEvents(sink: EventSink | undefined, namespaces: Namespaces, action: 'evict' | 'purge', removed: Removal[]): RegistryEvent[] {
  if (!sink || removed.length === 0 || !sink.wants(action)) return [];
  return removed.map(({ key, target }) => {
    const repository = namespaces.displayName(key);
    const upstream = upstreamOf(namespaces, repository, key);
    return { action, repository, key, target: upstream ? { ...target, upstream } : target };
  });
}

function upstreamOf(namespaces: Namespaces, name: string, key: string): string | undefined {
  try {
    const ref = namespaces.resolve(name);
    return ref.key === key ? ref.upstream : undefined;
  } catch {
    return undefined;
  }
}
