import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { NotificationsConfig } from '../config/types.js';
import { Journal } from './journal.js';
import { activeEndpoints, Notifier } from './notifier.js';
import { SPOOL_READER, SpoolingQueue } from './spool.js';
import type { EventQueue, NotifyLogger, NotifyObserver } from './types.js';

export { Notifier, type EndpointStatus, type ResendBound } from './notifier.js';
export { SIGNATURE_HEADER } from './sender.js';
export { RedisStreamQueue } from './redis-queue.js';
export type { EventQueue, NotifyObserver } from './types.js';

export interface OpenNotifierOptions {
  config: NotificationsConfig;
  dataDir: string;
  /** host:port wharf listens on (the port goes into source.addr, as Distribution) */
  listen: string;
  logger: NotifyLogger;
  observer: NotifyObserver;
  /** opens the shared queue (Redis stream) in cluster mode, retried while it fails; absent: the journal in dataDir */
  queue?: (onDrop: (endpoint: string, n: number) => void) => Promise<EventQueue>;
  now?: () => number;
  version?: string;
}

/** Opens the queue and the endpoints; undefined when no endpoint is configured (nothing is queued then). */
export async function openNotifier(o: OpenNotifierOptions): Promise<Notifier | undefined> {
  const endpoints = activeEndpoints(o.config);
  if (endpoints.length === 0) return undefined;
  const now = o.now ?? Date.now;
  const onDrop = (endpoint: string, n: number): void => {
    o.observer.notifyDropped(endpoint, n);
    o.logger.warn({ endpoint, dropped: n }, 'notification endpoint has maxPending undelivered events; oldest dropped');
  };
  const secrets = new Map<string, Buffer>();
  for (const ep of endpoints) {
    // A secret file's trailing newline (echo, editors) is not part of the key.
    if (ep.secret) secrets.set(ep.name, Buffer.from((await readFile(ep.secret.file, 'utf8')).replace(/\r?\n$/, '')));
  }
  const port = o.listen.slice(o.listen.lastIndexOf(':') + 1);
  const queue = o.queue
    ? await openSpooling(() => o.queue!(onDrop), { dir: join(o.dataDir, 'notify', 'spool', `${hostname()}-${port}`), endpoints, now, onDrop, logger: o.logger })
    : await Journal.open({ dir: join(o.dataDir, 'notify'), endpoints: endpoints.map((e) => ({ name: e.name, maxPending: e.maxPending })), now, onDrop, retention: o.config.retention });
  return new Notifier({
    config: o.config,
    queue,
    source: { addr: `${hostname()}:${port}`, instanceID: randomUUID() },
    secrets,
    userAgent: `wharf/${o.version ?? 'dev'}`,
    observer: o.observer,
    logger: o.logger,
    now,
    newId: randomUUID,
  });
}

/**
 * The shared queue with a spool in the data directory for when Redis does not answer (also at start-up:
 * `connect` is tried again until it succeeds). The spool is this
 * replica's own (`<dataDir>/notify/spool/<host>-<port>`: replicas share the data volume), so a replica
 * restarted after a crash during an outage finds and forwards what it had spooled.
 */
async function openSpooling(
  connect: () => Promise<EventQueue>,
  s: { dir: string; endpoints: ReadonlyArray<{ name: string; maxPending: number }>; now: () => number; onDrop: (endpoint: string, n: number) => void; logger: NotifyLogger },
): Promise<EventQueue> {
  // Kept to the largest maxPending, as the stream; what the spool drops, every endpoint misses.
  const maxPending = Math.max(...s.endpoints.map((e) => e.maxPending));
  const onDrop = (_reader: string, n: number): void => {
    for (const e of s.endpoints) s.onDrop(e.name, n);
  };
  const spool = await Journal.open({ dir: s.dir, endpoints: [{ name: SPOOL_READER, maxPending }], now: s.now, onDrop });
  const q = new SpoolingQueue({ connect, spool, logger: s.logger });
  await q.start();
  return q;
}
