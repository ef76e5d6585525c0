import type { CoreDeps } from './deps.js';
import type { RegistryEvent, RegistryEventAction, RepoRef } from './types.js';

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
