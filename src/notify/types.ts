import type { QueuedEvent } from './envelope.js';

/** One event in the durable queue, as an endpoint sees it. */
export interface Entry {
  /** queue position: a sequence number (journal) or a stream id (Redis); increases in append order */
  id: string;
  /** when it was queued (ms since the epoch) */
  at: number;
  q: QueuedEvent;
}

/**
 * The durable queue shared by every endpoint: appended once, read per endpoint from that endpoint's
 * cursor. append() resolves only once the events survive a crash.
 */
export interface EventQueue {
  readonly kind: 'journal' | 'redis';
  append(events: QueuedEvent[]): Promise<void>;
  /** Whether this process may deliver for the endpoint now (Redis: holds its delivery lease). */
  acquire(endpoint: string): Promise<boolean>;
  /** The oldest undelivered entries of the endpoint, in order. */
  read(endpoint: string, max: number): Promise<Entry[]>;
  /** Everything up to and including `entry` is delivered (or skipped) for the endpoint. */
  ack(endpoint: string, entry: Entry): Promise<void>;
  pending(endpoint: string): Promise<{ count: number; oldestAt?: number }>;
  /**
   * Every entry still kept, delivered or not, in queue order (`wharf events resend`); from `sinceMs` on
   * (queue time) when given: earlier entries may be left out.
   */
  history(sinceMs?: number): AsyncIterable<Entry>;
  /** Calls `listener` when entries were appended (by this process). */
  onAppend(listener: () => void): void;
  close(): Promise<void>;
}

/** What the notifier reports; observability/metrics implements it. */
export interface NotifyObserver {
  notifyDelivered(endpoint: string, events: number): void;
  notifyFailed(endpoint: string, status: number | 'error'): void;
  notifyDropped(endpoint: string, events: number): void;
  notifyPending(endpoint: string, count: number, oldestAgeSeconds: number): void;
}

export interface NotifyLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
