import type { QueuedEvent } from './envelope.js';
import type { Journal } from './journal.js';
import type { Entry, EventQueue, NotifyLogger } from './types.js';

/** Events forwarded from the spool per round. */
const FORWARD_BATCH = 100;
/** First and longest pause between forwarding attempts while the shared queue does not answer. */
const RETRY_MS = 250;
const MAX_RETRY_MS = 2000;

export interface SpoolingQueueOptions {
  /** the shared queue (the Redis stream) */
  shared: EventQueue;
  /** a local journal in the data directory with one reader, `SPOOL_READER` */
  spool: Journal;
  logger: NotifyLogger;
}

/** The spool journal's one reader: the forwarder into the shared queue. */
export const SPOOL_READER = 'shared-queue';

/**
 * The shared queue, with a local journal for when it does not answer (a Redis outage): an event the stream
 * cannot take is appended to the spool (fsynced) instead, so the request that caused it is still answered,
 * and a forwarder moves the spool into the stream, in order, once it answers again. While the spool holds
 * anything, new events queue behind it, so the stream receives them in the order they happened here. A crash
 * between forwarding and acknowledging the spool sends an event into the stream twice (same id: receivers
 * de-duplicate); nothing is lost.
 */
export class SpoolingQueue implements EventQueue {
  readonly kind: EventQueue['kind'];
  /** appends to the spool not yet durable */
  private spooling = 0;
  /** the spool may hold entries: new events go behind them */
  private behind = false;
  private forwarder: Promise<void> | undefined;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly o: SpoolingQueueOptions) {
    this.kind = o.shared.kind;
  }

  /** Forwards whatever a previous run left in the spool (a crash during an outage). */
  async start(): Promise<void> {
    if ((await this.o.spool.pending(SPOOL_READER)).count > 0) {
      this.behind = true;
      this.forward();
    }
  }

  async append(events: QueuedEvent[]): Promise<void> {
    let i = 0;
    if (!this.behind) {
      try {
        for (; i < events.length; i++) await this.o.shared.append([events[i]!]);
        return;
      } catch (e) {
        if (!this.behind) this.o.logger.warn({ err: (e as Error).message }, 'notifications: shared queue unavailable; spooling events in the data directory');
      }
    }
    this.behind = true;
    this.spooling++;
    try {
      await this.o.spool.append(events.slice(i));
    } finally {
      this.spooling--;
    }
    this.forward();
  }

  /** Starts the forwarder unless it runs. */
  private forward(): void {
    if (this.forwarder || this.closed) return;
    this.forwarder = this.forwardAll().finally(() => {
      this.forwarder = undefined;
      if (this.behind && !this.closed) this.forward();
    });
  }

  private async forwardAll(): Promise<void> {
    let pause = RETRY_MS;
    while (!this.closed) {
      try {
        const batch = await this.o.spool.read(SPOOL_READER, FORWARD_BATCH);
        if (batch.length === 0) {
          // Nothing durable left and nothing on its way in: new events go straight to the stream again.
          if (this.spooling === 0) {
            this.behind = false;
            this.o.logger.info({}, 'notifications: spooled events forwarded to the shared queue');
            return;
          }
          await this.pause(10);
          continue;
        }
        for (const entry of batch) {
          await this.o.shared.append([entry.q]);
          await this.o.spool.ack(SPOOL_READER, entry);
        }
        pause = RETRY_MS;
      } catch {
        await this.pause(pause);
        pause = Math.min(MAX_RETRY_MS, pause * 2);
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  acquire(endpoint: string): Promise<boolean> {
    return this.o.shared.acquire(endpoint);
  }

  read(endpoint: string, max: number): Promise<Entry[]> {
    return this.o.shared.read(endpoint, max);
  }

  ack(endpoint: string, entry: Entry): Promise<void> {
    return this.o.shared.ack(endpoint, entry);
  }

  /** The shared queue's pending events, plus those still in the spool (which every endpoint may want). */
  async pending(endpoint: string): Promise<{ count: number; oldestAt?: number }> {
    const local = await this.o.spool.pending(SPOOL_READER);
    const shared = await this.o.shared.pending(endpoint).catch(() => ({ count: 0 }) as { count: number; oldestAt?: number });
    const oldest = [local.oldestAt, shared.oldestAt].filter((t): t is number => t !== undefined);
    return { count: local.count + shared.count, ...(oldest.length > 0 ? { oldestAt: Math.min(...oldest) } : {}) };
  }

  /** The shared queue's history (spooled events join it once forwarded). */
  history(sinceMs?: number): AsyncIterable<Entry> {
    return this.o.shared.history(sinceMs);
  }

  onAppend(listener: () => void): void {
    this.o.shared.onAppend(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.forwarder;
    await this.o.spool.close();
    await this.o.shared.close();
  }
}
