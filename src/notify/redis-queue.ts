import type { QueuedEvent } from './envelope.js';
import type { Entry, EventQueue } from './types.js';

/** The few Redis commands the stream queue sends (ioredis's `call`; Redis or Redis Cluster). */
export interface StreamClient {
  call(command: string, ...args: Array<string | number>): Promise<unknown>;
  quit(): Promise<unknown>;
  /** drops the connection without a goodbye (and stops reconnecting) */
  disconnect(): void;
}

export interface RedisQueueOptions {
  keyPrefix: string;
  /** this replica, as lease holder */
  replicaId: string;
  endpoints: ReadonlyArray<{ name: string; maxPending: number; timeout: number }>;
  /** entries an endpoint had read but that were trimmed away before it delivered them */
  onDrop?(endpoint: string, count: number): void;
}

/** One consumer per group: only the replica holding an endpoint's lease reads its group. */
const CONSUMER = 'deliverer';
/** Entries per XRANGE while scanning the history. */
const HISTORY_PAGE = 500;

/** Renews a lease this replica holds, or takes a free one; 1 = held by us now. One key, so Cluster-safe. */
const LEASE_SCRIPT = `
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0`;

type RawEntry = [string, string[] | null];

/**
 * The cluster's queue: one Redis stream every replica appends to, a consumer group per endpoint (its
 * cursor, and its pending list of entries read but not yet acknowledged), and a per-endpoint lease so one
 * replica at a time delivers an endpoint: in order, each event once, and whoever takes over after a crash
 * starts with the entries the dead holder had read but not acknowledged (at least once).
 * The stream is trimmed (approximately) to the largest maxPending.
 */
export class RedisStreamQueue implements EventQueue {
  readonly kind = 'redis' as const;
  private readonly stream: string;
  private readonly listeners: Array<() => void> = [];
  /** ids read per endpoint and not yet acknowledged */
  private readonly unacked = new Map<string, string[]>();
  private readonly maxLen: number;

  private constructor(
    private readonly client: StreamClient,
    private readonly o: RedisQueueOptions,
  ) {
    this.stream = `${o.keyPrefix}notify:events`;
    this.maxLen = Math.max(1, ...o.endpoints.map((e) => e.maxPending));
  }

  static async open(client: StreamClient, o: RedisQueueOptions): Promise<RedisStreamQueue> {
    const q = new RedisStreamQueue(client, o);
    for (const ep of o.endpoints) {
      try {
        // A new endpoint starts at the tail ($): it gets what happens from now on.
        await client.call('XGROUP', 'CREATE', q.stream, q.group(ep.name), '$', 'MKSTREAM');
      } catch (e) {
        if (!/BUSYGROUP/.test((e as Error).message)) throw e;
      }
    }
    return q;
  }

  private group(endpoint: string): string {
    return `endpoint:${endpoint}`;
  }

  async append(events: QueuedEvent[]): Promise<void> {
    for (const q of events) await this.client.call('XADD', this.stream, 'MAXLEN', '~', this.maxLen, '*', 'e', JSON.stringify(q));
    if (events.length > 0) for (const l of this.listeners) l();
  }

  async acquire(endpoint: string): Promise<boolean> {
    const ep = this.o.endpoints.find((e) => e.name === endpoint);
    // Longer than one delivery can take, so a live holder keeps it between renewals.
    const ttl = 2 * (ep?.timeout ?? 1000) + 5000;
    const held = await this.client.call('EVAL', LEASE_SCRIPT, 1, `${this.o.keyPrefix}notify:lease:${endpoint}`, this.o.replicaId, ttl);
    return held === 1;
  }

  async read(endpoint: string, max: number): Promise<Entry[]> {
    // First what was read but never acknowledged (a failed delivery, or a holder that died), then new entries.
    let raw = await this.readGroup(endpoint, max, '0');
    if (raw.length === 0) raw = await this.readGroup(endpoint, max, '>');
    const out: Entry[] = [];
    const trimmed: string[] = [];
    for (const [id, fields] of raw) {
      const json = fields?.[1];
      if (fields === null || json === undefined) trimmed.push(id);
      else out.push({ id, at: Number(id.split('-')[0]), q: JSON.parse(json) as QueuedEvent });
    }
    // Entries trimmed away after they were read (maxPending) are gone: acknowledged so they stop coming back.
    if (trimmed.length > 0) {
      await this.client.call('XACK', this.stream, this.group(endpoint), ...trimmed);
      this.o.onDrop?.(endpoint, trimmed.length);
    }
    this.unacked.set(endpoint, out.map((e) => e.id));
    return out;
  }

  private async readGroup(endpoint: string, max: number, from: '0' | '>'): Promise<RawEntry[]> {
    const read = (): Promise<unknown> => this.client.call('XREADGROUP', 'GROUP', this.group(endpoint), CONSUMER, 'COUNT', max, 'STREAMS', this.stream, from);
    let res: unknown;
    try {
      res = await read();
    } catch (e) {
      if (!/NOGROUP/.test((e as Error).message)) throw e;
      // The group is gone (a Redis restarted without persistence): every entry the stream holds now came after.
      await this.client.call('XGROUP', 'CREATE', this.stream, this.group(endpoint), '0', 'MKSTREAM').catch((err: Error) => {
        if (!/BUSYGROUP/.test(err.message)) throw err;
      });
      res = await read();
    }
    return (res as Array<[string, RawEntry[]]> | null)?.[0]?.[1] ?? [];
  }

  async ack(endpoint: string, entry: Entry): Promise<void> {
    const ids = this.unacked.get(endpoint) ?? [];
    const upTo = ids.indexOf(entry.id);
    const done = upTo < 0 ? [entry.id] : ids.slice(0, upTo + 1);
    await this.client.call('XACK', this.stream, this.group(endpoint), ...done);
    this.unacked.set(endpoint, upTo < 0 ? ids : ids.slice(upTo + 1));
  }

  async pending(endpoint: string): Promise<{ count: number; oldestAt?: number }> {
    const groups = (await this.client.call('XINFO', 'GROUPS', this.stream)) as Array<Array<string | number | null>>;
    const g = groups.map(fields).find((f) => f.name === this.group(endpoint));
    if (!g) return { count: 0 };
    const count = Number(g.pending ?? 0) + Number(g.lag ?? 0);
    if (count === 0) return { count };
    const pel = (await this.client.call('XPENDING', this.stream, this.group(endpoint), '-', '+', 1)) as Array<[string, ...unknown[]]>;
    const first = pel[0]?.[0] ?? ((await this.client.call('XRANGE', this.stream, `(${String(g['last-delivered-id'])}`, '+', 'COUNT', 1)) as RawEntry[])[0]?.[0];
    return first === undefined ? { count } : { count, oldestAt: Number(first.split('-')[0]) };
  }

  async *history(sinceMs?: number): AsyncIterable<Entry> {
    // Stream ids start with the time they were added: a time bound starts the scan there.
    let start = sinceMs === undefined ? '-' : `${Math.max(0, Math.floor(sinceMs))}-0`;
    for (;;) {
      const page = (await this.client.call('XRANGE', this.stream, start, '+', 'COUNT', HISTORY_PAGE)) as RawEntry[];
      for (const [id, f] of page) {
        const json = f?.[1];
        if (json !== undefined) yield { id, at: Number(id.split('-')[0]), q: JSON.parse(json) as QueuedEvent };
      }
      if (page.length < HISTORY_PAGE) return;
      start = `(${page[page.length - 1]![0]}`;
    }
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    // QUIT cannot be sent to a Redis that is away: then the client is told to stop trying to reconnect.
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/** XINFO's flat [name, value, …] reply as an object. */
function fields(flat: Array<string | number | null>): Record<string, string | number | null> {
  const o: Record<string, string | number | null> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[String(flat[i])] = flat[i + 1] ?? null;
  return o;
}
