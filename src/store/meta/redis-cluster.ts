import type { Cluster, Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';

/** A replica as its peers reach it (structurally core's PeerRef; store/ does not import core/). */
export interface ReplicaRef {
  id: string;
  url: string;
}

/** A lease this replica holds; renewed in the background until released or lost. */
export interface HeldLease {
  /** true once a renewal found the key gone or someone else's (another replica may have taken over) */
  readonly lost: boolean;
  /** Aborted once the lease is lost: work only the holder may do stops there. */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

export type BlobClaim = { kind: 'mine'; lease: HeldLease } | { kind: 'peer'; holder: ReplicaRef };

export interface RedisCoordinatorOptions {
  keyPrefix: string;
  self: ReplicaRef;
  /** fetch lease TTL; a dead holder's lease is gone this long after its last renewal (default 15 s) */
  fetchLeaseMs?: number;
  /** how often held leases are renewed (default a third of their TTL) */
  renewEveryMs?: number;
  /** how often waitForRelease looks at the lease (default 150 ms) */
  pollMs?: number;
  /** how long the replica's address stays registered without a refresh (default 30 s) */
  peerTtlMs?: number;
  random?: () => string;
}

/** Extends the TTL only while the key still holds our token. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/** Deletes only our own lease: a late release must not free a lease another replica took after ours expired. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export const FETCH_LEASE_MS = 15_000;

/**
 * What replicas coordinate through in Redis: blob fetch leases, tag revalidation windows, named leases
 * (eviction runs on one replica at a time), the replica address book and the shared peer token.
 *
 *   P lease:blob:<digest>   string  "<replica id>/<nonce>" PX fetchLeaseMs, renewed while the fetch runs
 *   P lease:<name>          string  same, for lease(name); lease:upload:<id> is held by the one request
 *                                   writing or publishing an upload session
 *   P reval:<repo>:<tag>    string  replica id PX window: the replica that revalidates the tag this window
 *   P window:<name>         string  replica id PX window: claimWindow (one quota probe per upstream per interval)
 *   P lease:manifest:<repo>:<ref>  the first fetch of a manifest (a lease(name) like any other)
 *   P peer:<id>             string  the replica's advertised URL, PX peerTtlMs, refreshed
 *   P peer-token            string  random secret peers present to each other's internal endpoint
 *
 * Every key is single (no multi-key command), so a Redis Cluster needs no hash tags here.
 */
export class RedisCoordinator {
  readonly self: ReplicaRef;
  private readonly prefix: string;
  private readonly fetchLeaseMs: number;
  private readonly renewEveryMs: number | undefined;
  private readonly pollMs: number;
  private readonly peerTtlMs: number;
  private readonly random: () => string;
  private heartbeat: NodeJS.Timeout | undefined;
  private token: string | undefined;
  private readonly held = new Set<LeaseImpl>();

  constructor(
    private readonly redis: Redis | Cluster,
    opts: RedisCoordinatorOptions,
  ) {
    this.self = opts.self;
    this.prefix = opts.keyPrefix;
    this.fetchLeaseMs = opts.fetchLeaseMs ?? FETCH_LEASE_MS;
    this.renewEveryMs = opts.renewEveryMs;
    this.pollMs = opts.pollMs ?? 150;
    this.peerTtlMs = opts.peerTtlMs ?? 30_000;
    this.random = opts.random ?? (() => randomBytes(12).toString('hex'));
    if (this.self.id.includes('/')) throw new Error('replica id must not contain "/"');
  }

  /** Registers this replica's address (kept fresh until close) and loads the shared peer token. */
  async start(): Promise<void> {
    await this.register();
    this.heartbeat = setInterval(() => void this.register().catch(() => undefined), Math.max(1000, Math.floor(this.peerTtlMs / 3)));
    this.heartbeat.unref();
  }

  /** The secret peers send each other; undefined before start(). */
  peerToken(): string | undefined {
    return this.token;
  }

  /** Becomes the one fetcher of a blob, or learns which replica is. */
  async claimFetch(digest: string): Promise<BlobClaim> {
    const key = this.key(`lease:blob:${digest}`);
    for (;;) {
      const lease = await this.tryLease(key, this.fetchLeaseMs);
      if (lease) return { kind: 'mine', lease };
      const value = await this.redis.get(key);
      if (value === null) continue; // released between our SET and GET: try again
      const id = value.split('/')[0] ?? '';
      // No address (holder died long ago, or never registered): an empty URL; the caller waits for expiry.
      return { kind: 'peer', holder: { id, url: (await this.redis.get(this.key(`peer:${id}`))) ?? '' } };
    }
  }

  /** Resolves once nobody holds the blob's fetch lease. */
  waitForRelease(digest: string, signal?: AbortSignal): Promise<void> {
    return this.waitGone(this.key(`lease:blob:${digest}`), signal);
  }

  /** true for exactly one caller per (repo, tag) per window across all replicas. */
  async claimRevalidation(repoKey: string, tag: string, windowMs: number): Promise<boolean> {
    const res = await this.redis.set(this.key(`reval:${repoKey}:${tag}`), this.self.id, 'PX', Math.max(1, Math.ceil(windowMs)), 'NX');
    return res === 'OK';
  }

  /** true for exactly one caller per name per window across all replicas (`window:<name>`). */
  async claimWindow(name: string, windowMs: number): Promise<boolean> {
    const res = await this.redis.set(this.key(`window:${name}`), this.self.id, 'PX', Math.max(1, Math.ceil(windowMs)), 'NX');
    return res === 'OK';
  }

  /** Resolves once nobody holds the named lease. */
  waitForLease(name: string, signal?: AbortSignal): Promise<void> {
    return this.waitGone(this.key(`lease:${name}`), signal);
  }

  /**
   * A named lease (e.g. `eviction`), renewed in the background while held; undefined when another holder has it.
   * Expires ttlMs after its holder stops renewing (crash), so the work moves to another replica.
   */
  lease(name: string, ttlMs: number): Promise<HeldLease | undefined> {
    return this.tryLease(this.key(`lease:${name}`), ttlMs);
  }

  /** The address a replica registered; undefined when it has not (or no longer has). */
  async peer(id: string): Promise<ReplicaRef | undefined> {
    const url = await this.redis.get(this.key(`peer:${id}`));
    return url === null ? undefined : { id, url };
  }

  /** Stops renewing, releases held leases and unregisters (best effort: Redis may be gone). */
  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await Promise.all([...this.held].map((l) => l.release().catch(() => undefined)));
    await this.redis.del(this.key(`peer:${this.self.id}`)).catch(() => undefined);
  }

  private key(rest: string): string {
    return `${this.prefix}${rest}`;
  }

  /**
   * Also re-proposes the peer token and adopts whatever Redis holds: after Redis lost its data (restart
   * without persistence) the replicas converge on one token again within a heartbeat.
   */
  private async register(): Promise<void> {
    await this.redis.set(this.key(`peer:${this.self.id}`), this.self.url, 'PX', this.peerTtlMs);
    await this.redis.set(this.key('peer-token'), this.token ?? this.random(), 'NX');
    this.token = (await this.redis.get(this.key('peer-token'))) ?? this.token;
  }

  private async tryLease(key: string, ttlMs: number): Promise<HeldLease | undefined> {
    const token = `${this.self.id}/${this.random()}`;
    const ok = await this.redis.set(key, token, 'PX', ttlMs, 'NX');
    if (ok !== 'OK') return undefined;
    const lease = new LeaseImpl(this.redis, key, token, ttlMs, this.renewEveryMs ?? Math.max(100, Math.floor(ttlMs / 3)), () => this.held.delete(lease));
    this.held.add(lease);
    return lease;
  }

  private waitGone(key: string, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason ?? new Error('aborted'));
      };
      const check = () => {
        this.redis.exists(key).then(
          (n) => {
            if (signal?.aborted) return;
            if (n === 0) {
              signal?.removeEventListener('abort', onAbort);
              resolve();
            } else {
              timer = setTimeout(check, this.pollMs);
            }
          },
          (e: unknown) => {
            signal?.removeEventListener('abort', onAbort);
            reject(e);
          },
        );
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      check();
    });
  }
}

class LeaseImpl implements HeldLease {
  private lostFlag = false;
  private released = false;
  private lastRenewed = Date.now();
  private readonly timer: NodeJS.Timeout;
  private readonly lostSignal = new AbortController();

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly key: string,
    private readonly token: string,
    private readonly ttlMs: number,
    renewEveryMs: number,
    private readonly done: () => void,
  ) {
    this.timer = setInterval(() => void this.renew(), renewEveryMs);
    this.timer.unref();
  }

  get lost(): boolean {
    return this.lostFlag;
  }

  get signal(): AbortSignal {
    return this.lostSignal.signal;
  }

  private async renew(): Promise<void> {
    if (this.released || this.lostFlag) return;
    try {
      const n = await this.redis.eval(RENEW, 1, this.key, this.token, String(this.ttlMs));
      if (n === 1) this.lastRenewed = Date.now();
      else this.markLost();
    } catch {
      // Redis unreachable: the key expires on its own schedule; past it, assume another replica may hold it.
      if (Date.now() - this.lastRenewed >= this.ttlMs) this.markLost();
    }
  }

  private markLost(): void {
    this.lostFlag = true;
    clearInterval(this.timer);
    this.lostSignal.abort(new Error(`lease ${this.key} lost`));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearInterval(this.timer);
    this.done();
    if (this.lostFlag) return;
    await this.redis.eval(RELEASE, 1, this.key, this.token);
  }
}
