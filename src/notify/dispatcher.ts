import type { QueuedEvent } from './envelope.js';
import type { Sender } from './sender.js';
import type { EventQueue, NotifyLogger, NotifyObserver } from './types.js';

/** Events sent in one `distribution`-format request while catching up. */
const BATCH = 32;
/** How often a replica without the endpoint's lease, or with nothing to send, looks again. */
const POLL_MS = 250;

export interface DispatcherOptions {
  name: string;
  threshold: number;
  backoff: number;
  maxBackoff: number;
  /** cloudevents: one event per request */
  single: boolean;
  wants(q: QueuedEvent): boolean;
  queue: EventQueue;
  sender: Pick<Sender, 'send'>;
  observer: NotifyObserver;
  logger: NotifyLogger;
  now: () => number;
}

export interface EndpointState {
  name: string;
  /** consecutive failed deliveries */
  failures: number;
  lastError?: string;
  /** when the current back-off ends (ms since the epoch) */
  retryAt?: number;
  delivered: number;
}

/**
 * Delivers one endpoint's events in queue order, at least once: an entry is acknowledged only after
 * the endpoint answered 2xx/3xx. Failures retry at once until `threshold` in a row, then wait
 * `backoff`, doubling per further failure up to `maxBackoff` (Distribution waits a fixed backoff).
 * Each endpoint has its own loop, so one that is down or never answers delays nobody else.
 */
export class Dispatcher {
  readonly state: EndpointState;
  private wake: (() => void) | undefined;
  /** set when something happened while the loop was not sleeping: its next sleep returns at once */
  private kicked = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;

  constructor(private readonly o: DispatcherOptions) {
    this.state = { name: o.name, failures: 0, delivered: 0 };
    o.queue.onAppend(() => this.kick());
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    await this.loop;
  }

  /** Skips an ongoing back-off (`wharf events retry`). */
  poke(): void {
    this.state.retryAt = undefined;
    this.kick();
    this.wake?.();
  }

  /** New entries: an idle wait ends now; a back-off does not. */
  private kick(): void {
    this.kicked = true;
    if (this.idle) this.wake?.();
  }

  private idle = false;

  private sleep(ms: number, idle: boolean): Promise<void> {
    if (idle && this.kicked) {
      this.kicked = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined = undefined;
      const done = (): void => {
        clearTimeout(t);
        this.wake = undefined;
        this.idle = false;
        resolve();
      };
      t = setTimeout(done, ms);
      this.idle = idle;
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    const { o } = this;
    while (!this.stopped) {
      try {
        await this.report();
        if (!(await o.queue.acquire(o.name))) {
          await this.sleep(POLL_MS, true);
          continue;
        }
        this.kicked = false;
        const batch = await o.queue.read(o.name, o.single ? 1 : BATCH);
        if (batch.length === 0) {
          await this.sleep(POLL_MS, true);
          continue;
        }
        const wanted = batch.filter((e) => o.wants(e.q));
        if (wanted.length === 0) {
          await o.queue.ack(o.name, batch[batch.length - 1]!);
          continue;
        }
        const res = await o.sender.send(
          wanted.map((e) => e.q.event),
          this.abort.signal,
        );
        if (this.stopped) break;
        if (res.ok) {
          await o.queue.ack(o.name, batch[batch.length - 1]!);
          this.state.failures = 0;
          this.state.lastError = undefined;
          this.state.delivered += wanted.length;
          o.observer.notifyDelivered(o.name, wanted.length);
          await this.report();
          continue;
        }
        this.state.failures++;
        this.state.lastError = res.reason;
        o.observer.notifyFailed(o.name, res.status);
        if (this.state.failures === o.threshold) o.logger.warn({ endpoint: o.name, error: res.reason, failures: this.state.failures }, 'notification endpoint failing; backing off');
        if (this.state.failures >= o.threshold) {
          const wait = Math.min(o.maxBackoff, o.backoff * 2 ** Math.min(30, this.state.failures - o.threshold));
          this.state.retryAt = o.now() + wait;
          await this.sleep(wait, false);
          this.state.retryAt = undefined;
        }
      } catch (e) {
        o.logger.error({ endpoint: o.name, err: (e as Error).message }, 'notification queue error');
        await this.sleep(POLL_MS * 4, false);
      }
    }
  }

  private async report(): Promise<void> {
    const p = await this.o.queue.pending(this.o.name);
    this.o.observer.notifyPending(this.o.name, p.count, p.oldestAt === undefined ? 0 : Math.max(0, (this.o.now() - p.oldestAt) / 1000));
  }
}
