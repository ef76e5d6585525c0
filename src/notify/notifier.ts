import type { NotificationsConfig, NotifyEndpointConfig } from '../config/types.js';
import type { EventSink, RegistryEvent, RegistryEventAction } from '../core/types.js';
import { ErrorCode, RegistryError } from '../oci/index.js';
import { Dispatcher, type EndpointState } from './dispatcher.js';
import { toDistributionEvent, type QueuedEvent, type SourceRecord } from './envelope.js';
import { endpointFilter } from './filter.js';
import { Sender } from './sender.js';
import type { EventQueue, NotifyLogger, NotifyObserver } from './types.js';

/** An end of a `wharf events resend` range: an event id, or a time (ms since the epoch). */
export type ResendBound = { id: string } | { time: number };

const RESEND_SKEW_MS = 60_000;
const RESEND_BATCH = 1000;

/** How often the pending gauges are refreshed besides after each delivery. */
const PENDING_REPORT_MS = 1000;

export interface NotifierOptions {
  config: NotificationsConfig;
  queue: EventQueue;
  source: SourceRecord;
  /** HMAC keys by endpoint name (secret.file contents) */
  secrets: ReadonlyMap<string, Buffer>;
  userAgent: string;
  observer: NotifyObserver;
  logger: NotifyLogger;
  now: () => number;
  newId: () => string;
}

export interface EndpointStatus extends EndpointState {
  url: string;
  disabled: boolean;
  format: string;
  pending: number;
  /** age of the oldest undelivered event, in seconds */
  oldestPendingSeconds: number;
}

/** The endpoints that take part in delivery: configured and not disabled. */
export function activeEndpoints(config: NotificationsConfig): NotifyEndpointConfig[] {
  return (config.endpoints ?? []).filter((e) => !e.disabled);
}

/**
 * Events in, endpoints out: emit() queues each event once (durably) if any endpoint takes it; one
 * Dispatcher per endpoint delivers from the queue in order.
 */
export class Notifier implements EventSink {
  private readonly dispatchers: Dispatcher[] = [];
  private readonly filters: Array<(q: QueuedEvent) => boolean> = [];
  private readonly senders: Sender[] = [];
  private readonly ignored: Array<Set<string>> = [];
  private gauges: NodeJS.Timeout | undefined;

  constructor(private readonly o: NotifierOptions) {
    for (const ep of activeEndpoints(o.config)) {
      const takes = endpointFilter(ep);
      const wants = (q: QueuedEvent): boolean => (q.only === undefined || q.only === ep.name) && takes(q);
      const sender = new Sender({ url: ep.url, headers: ep.headers, timeout: ep.timeout, format: ep.format, secret: o.secrets.get(ep.name), userAgent: o.userAgent });
      this.filters.push(wants);
      this.senders.push(sender);
      this.ignored.push(new Set(ep.ignore.actions));
      this.dispatchers.push(
        new Dispatcher({
          name: ep.name,
          threshold: ep.threshold,
          backoff: ep.backoff,
          maxBackoff: ep.maxBackoff,
          single: ep.format === 'cloudevents',
          wants,
          queue: o.queue,
          sender,
          observer: o.observer,
          logger: o.logger,
          now: o.now,
        }),
      );
    }
  }

  wants(action: RegistryEventAction): boolean {
    return this.ignored.some((s) => !s.has(action));
  }

  async emit(events: RegistryEvent[]): Promise<void> {
    const queued: QueuedEvent[] = [];
    const includeReferences = this.o.config.events.includereferences;
    for (const e of events) {
      const q: QueuedEvent = { key: e.key, event: toDistributionEvent(e, { id: this.o.newId(), now: this.o.now(), source: this.o.source, includeReferences }) };
      if (this.filters.some((f) => f(q))) queued.push(q);
    }
    try {
      await this.o.queue.append(queued);
    } catch (e) {
      // Not durable, so the request that caused it fails; as an outage (503, with the reason), never a 500.
      throw new RegistryError(ErrorCode.UNAVAILABLE, 'notifications: the event could not be queued durably', { cause: e, detail: { reason: (e as Error).message } });
    }
  }

  start(): void {
    for (const d of this.dispatchers) d.start();
    // A delivery can hang for up to its timeout: the pending gauges keep moving meanwhile.
    this.gauges ??= setInterval(() => void this.reportPending(), PENDING_REPORT_MS).unref();
  }

  private async reportPending(): Promise<void> {
    for (const s of await this.status().catch(() => [])) {
      if (!s.disabled) this.o.observer.notifyPending(s.name, s.pending, s.oldestPendingSeconds);
    }
  }

  /** Wakes every endpoint in back-off (`wharf events retry`). */
  retry(name?: string): boolean {
    const hits = this.dispatchers.filter((d) => name === undefined || d.state.name === name);
    for (const d of hits) d.poke();
    return hits.length > 0;
  }

  /**
   * `wharf events resend`: queues again, for one endpoint only, the kept events (delivered or not) from `from`
   * to `to` (inclusive; an event id or a time), those the endpoint takes, in their order, with their ids.
   * Undefined when there is no such active endpoint; throws when `from` names an event no longer kept.
   */
  async resend(endpoint: string, from: ResendBound, to?: ResendBound): Promise<number | undefined> {
    const i = this.dispatchers.findIndex((d) => d.state.name === endpoint);
    if (i < 0) return undefined;
    const wants = this.filters[i]!;
    const copies: QueuedEvent[] = [];
    let started = false;
    // A clock-skew margin: an event's queue time (Redis: when a replica added it) may trail its timestamp.
    const since = 'time' in from ? from.time - RESEND_SKEW_MS : undefined;
    for await (const entry of this.o.queue.history(since)) {
      const e = entry.q.event;
      if (entry.q.only !== undefined) continue; // copies of earlier re-sends are not history
      const at = Date.parse(e.timestamp);
      if (!started) started = 'id' in from ? e.id === from.id : at >= from.time;
      if (!started) continue;
      if (to && 'time' in to && at > to.time) break;
      if (wants(entry.q)) copies.push({ ...entry.q, only: endpoint });
      if (to && 'id' in to && e.id === to.id) break;
    }
    if (!started && 'id' in from) throw new RegistryError(ErrorCode.NAME_UNKNOWN, 'no such event among those kept (notifications.retention)', { status: 404, detail: { from: from.id } });
    for (let k = 0; k < copies.length; k += RESEND_BATCH) await this.o.queue.append(copies.slice(k, k + RESEND_BATCH));
    this.o.logger.info({ endpoint, events: copies.length }, 'notifications: events queued again (resend)');
    return copies.length;
  }

  async status(): Promise<EndpointStatus[]> {
    const out: EndpointStatus[] = [];
    for (const ep of this.o.config.endpoints ?? []) {
      const d = this.dispatchers.find((x) => x.state.name === ep.name);
      const p = ep.disabled ? { count: 0 } : await this.o.queue.pending(ep.name);
      out.push({
        ...(d?.state ?? { name: ep.name, failures: 0, delivered: 0 }),
        url: shownUrl(ep.url),
        disabled: ep.disabled,
        format: ep.format,
        pending: p.count,
        oldestPendingSeconds: p.oldestAt === undefined ? 0 : Math.max(0, (this.o.now() - p.oldestAt) / 1000),
      });
    }
    return out;
  }

  async close(): Promise<void> {
    clearInterval(this.gauges);
    await Promise.all(this.dispatchers.map((d) => d.stop()));
    await Promise.all(this.senders.map((s) => s.close()));
    await this.o.queue.close();
  }
}

/** An endpoint URL without credentials or query (either may hold a secret). */
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}
