import type { QueuedEvent } from './envelope.js';
import type { Journal } from './journal.js';
import type { Entry, EventQueue, NotifyLogger } from './types.js';

/** Events forwarded from the spool per round. */
const FORWARD_BATCH = 100;
/** First and longest pause between forwarding (or connecting) attempts while the shared queue does not answer. */
const RETRY_MS = 250;
const MAX_RETRY_MS = 2000;

export interface SpoolingQueueOptions {
  /** opens the shared queue (the Redis stream); called again until it succeeds */
  connect: () => Promise<EventQueue>;
  /** a local journal in the data directory with one reader, `SPOOL_READER` */
  spool: Journal;
  logger: NotifyLogger;
}

/** The spool journal's one reader: the forwarder into the shared queue. */
export const SPOOL_READER = 'shared-queue';

/**
 * The shared queue, with a local journal for when it does not answer (a Redis outage, also one at start-up):
 * an event the stream cannot take is appended to the spool (fsynced) instead, so the request that caused it
 * is still answered, and a forwarder moves the spool into the stream, in order, once it answers again. While
 * the spool holds anything, new events queue behind it, so the stream receives them in the order they
 * happened here. A crash between forwarding and acknowledging the spool sends an event into the stream twice
 * (same id: receivers de-duplicate); nothing is lost. Until the shared queue is reached, nothing is delivered.
 */
export class SpoolingQueue implements EventQueue {
  readonly kind = 'redis' as const;
  private shared: EventQueue | undefined;
  private readonly listeners: Array<() => void> = [];
  /** appends to the spool not yet durable */
  private spooling = 0;
  /** the spool may hold entries: new events go behind them */
  private behind = false;
  private forwarder: Promise<void> | undefined;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly o: SpoolingQueueOptions) {}

  /** Connects (or keeps trying in the background) and forwards what a previous run left in the spool. */
  async start(): Promise<void> {
    this.behind = (await this.o.spool.pending(SPOOL_READER)).count > 0;
    await this.connect().catch((e: unknown) => this.o.logger.warn({ err: (e as Error).message }, 'notifications: shared queue unavailable at start; spooling events in the data directory'));
    if (this.behind || !this.shared) this.forward();
  }

  private async connect(): Promise<EventQueue> {
    if (this.shared) return this.shared;
    const q = await this.o.connect();
    for (const l of this.listeners) q.onAppend(l);
    this.shared = q;
    return q;
  }

  async append(events: QueuedEvent[]): Promise<void> {
    let i = 0;
    if (!this.behind && this.shared) {
      try {
        for (; i < events.length; i++) await this.shared.append([events[i]!]);
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
      if ((this.behind || !this.shared) && !this.closed) this.forward();
    });
  }

  private async forwardAll(): Promise<void> {
    let pause = RETRY_MS;
    while (!this.closed) {
      try {
        const shared = await this.connect();
        const batch = await this.o.spool.read(SPOOL_READER, FORWARD_BATCH);
        if (batch.length === 0) {
          // Nothing durable left and nothing on its way in: new events go straight to the stream again.
          if (this.spooling === 0) {
            if (this.behind) this.o.logger.info({}, 'notifications: spooled events forwarded to the shared queue');
            this.behind = false;
            return;
          }
          await this.pause(10);
          continue;
        }
        for (const entry of batch) {
          await shared.append([entry.q]);
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

  async acquire(endpoint: string): Promise<boolean> {
    return this.shared ? this.shared.acquire(endpoint) : false;
  }

  async read(endpoint: string, max: number): Promise<Entry[]> {
    return this.shared ? this.shared.read(endpoint, max) : [];
  }

  async ack(endpoint: string, entry: Entry): Promise<void> {
    await this.shared?.ack(endpoint, entry);
  }

  /** The shared queue's pending events, plus those still in the spool (which every endpoint may want). */
  async pending(endpoint: string): Promise<{ count: number; oldestAt?: number }> {
    const local = await this.o.spool.pending(SPOOL_READER);
    const none: { count: number; oldestAt?: number } = { count: 0 };
    const shared = this.shared ? await this.shared.pending(endpoint).catch(() => none) : none;
    const oldest = [local.oldestAt, shared.oldestAt].filter((t): t is number => t !== undefined);
    return { count: local.count + shared.count, ...(oldest.length > 0 ? { oldestAt: Math.min(...oldest) } : {}) };
  }

  /** The shared queue's history (spooled events join it once forwarded). */
  async *history(sinceMs?: number): AsyncIterable<Entry> {
    if (this.shared) yield* this.shared.history(sinceMs);
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
    this.shared?.onAppend(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake?.();
    await this.forwarder;
    await this.o.spool.close();
    await this.shared?.close();
  }
}
