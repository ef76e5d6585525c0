import { LRUCache } from 'lru-cache';
import { isRegistryError, type Digest } from '../../oci/index.js';
import type {
  LinkRecord,
  MetadataStore,
  Page,
  RepoRecord,
  TagRecord,
  UploadRecord,
} from '../types.js';

export interface MemoOptions {
  /** Cached entries (default 10 000). */
  max?: number;
  /** How long an entry may be served without asking the inner store (default 2 s): bounds staleness across replicas. */
  ttlMs?: number;
  /**
   * Fired with the cache key after every local write of a cached record (for a cross-replica broadcast). A
   * successful write resolves only once the promise returned here has: a client told "pushed" by this replica
   * then finds the new tag on every other one (must not reject).
   */
  onChange?: (key: string) => Promise<void> | void;
  /**
   * Turns an inner-store failure into what callers see (Redis: RegistryError UNAVAILABLE). Reads of cached keys
   * that fail are answered from the last value this cache held, however old (Redis outage: known links and tags
   * keep being served); everything else fails with the mapped error.
   */
  mapError?: (err: unknown) => unknown;
  /**
   * How long into an outage of the inner store (Redis) the last known tags and links are still served
   * (default: without bound). Past it, reads of them fail like every other read.
   */
  outageGraceMs?: number;
  /** clock for the outage bound (default Date.now) */
  now?: () => number;
}

/** Cache keys; exported so an invalidation broadcast can name them. */
export const memoKeys = {
  tag: (repo: string, tag: string) => `t\u0000${repo}\u0000${tag}`,
  link: (repo: string, digest: Digest) => `l\u0000${repo}\u0000${digest}`,
  repo: (repo: string) => `r\u0000${repo}`,
};

type Entry = {
  v: TagRecord | LinkRecord | RepoRecord | undefined;
  /** loaded from a snapshot: known to hold at this time (ms), and no later; absent = kept current by this replica */
  at?: number;
};

/** One last known record as a snapshot holds it: the memo key, the record, when it was known to hold. */
export interface KnownEntry {
  key: string;
  value: TagRecord | LinkRecord | RepoRecord;
  at: number;
}

/**
 * Read-through cache for the hot reads (getTag, getLink, getRepo, misses included) in front of another store.
 * Writes go through and invalidate. A read that raced a write never fills the cache with what it read.
 */
export class MemoMetadataStore implements MetadataStore {
  private readonly cache: LRUCache<string, Entry>;
  /** Reads in flight per key; a write removes the token so the racing read does not cache its result. */
  private readonly inflight = new Map<string, object>();
  private readonly onChange: ((key: string) => void) | undefined;
  private readonly mapError: (err: unknown) => unknown;
  /** Last value read per key, without expiry: what a failing inner store is answered with. */
  private readonly lastKnown: LRUCache<string, Entry>;
  private readonly outageGraceMs: number;
  private readonly now: () => number;
  /** when the inner store started failing (undefined: it answers) */
  private outageSince: number | undefined;
  /** lastKnown holds records from a snapshot */
  private restored = false;

  constructor(
    readonly inner: MetadataStore,
    opts: MemoOptions = {},
  ) {
    this.cache = new LRUCache<string, Entry>({ max: opts.max ?? 10_000, ttl: opts.ttlMs ?? 2_000 });
    this.lastKnown = new LRUCache<string, Entry>({ max: opts.max ?? 10_000 });
    this.onChange = opts.onChange;
    this.mapError = opts.mapError ?? ((e) => e);
    this.outageGraceMs = opts.outageGraceMs ?? Infinity;
    this.now = opts.now ?? Date.now;
  }

  /** Since when the inner store has been failing (degraded: last known tags and links served); undefined when it answers. */
  degradedSince(): number | undefined {
    return this.outageSince;
  }

  /** Whether last known values may still stand in for the inner store's answers. */
  private withinGrace(known: Entry): boolean {
    if (this.outageSince === undefined) return false;
    return this.now() - (known.at ?? this.outageSince) <= this.outageGraceMs;
  }

  /** The inner store answered: leave the degraded mode; records from a snapshot may be stale by now, forget them. */
  private answered(): void {
    if (this.outageSince === undefined && !this.restored) return;
    this.outageSince = undefined;
    this.restored = false;
    for (const [k, e] of this.lastKnown.entries()) if (e.at !== undefined) this.lastKnown.delete(k);
  }

  /**
   * Last known records worth keeping across a restart (tags, links, repositories; no misses), most recently
   * used first, each with the time it was known to hold: now while the inner store answers, else when it stopped.
   */
  exportKnown(): KnownEntry[] {
    const asOf = this.outageSince ?? this.now();
    const out: KnownEntry[] = [];
    for (const [key, e] of this.lastKnown.entries()) if (e.v !== undefined) out.push({ key, value: copy(e.v), at: e.at ?? asOf });
    return out;
  }

  /**
   * Records from a snapshot, served only while the inner store fails and only within the outage grace of
   * their own time; the first answer of the inner store drops them. Never replaces what this process knows.
   */
  restoreKnown(entries: Iterable<KnownEntry>): void {
    for (const e of entries) {
      if (this.lastKnown.has(e.key)) continue;
      this.lastKnown.set(e.key, { v: copy(e.value), at: e.at });
      this.restored = true;
    }
  }

  /** A store that answered with a registry error (a conflict, a refusal) is up; anything else is an outage. */
  private failed(e: unknown): void {
    if (!isRegistryError(e)) this.outageSince ??= this.now();
  }

  get kind(): MetadataStore['kind'] {
    return this.inner.kind;
  }

  /** The key changed elsewhere (another replica): forget it entirely. */
  invalidate(key: string): void {
    this.drop(key);
    this.lastKnown.delete(key);
  }

  /** Fresh entries become suspect (missed invalidations): reload each on next read. Outage fallbacks stay. */
  invalidateAll(): void {
    this.cache.clear();
    this.inflight.clear();
  }

  private drop(key: string): void {
    this.cache.delete(key);
    this.inflight.delete(key);
  }

  private async cached<T extends Entry['v']>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.cache.get(key);
    if (hit) return copy(hit.v) as T;
    const token = {};
    this.inflight.set(key, token);
    let v: T;
    try {
      v = await load();
      this.answered();
    } catch (e) {
      if (this.inflight.get(key) === token) this.inflight.delete(key);
      this.failed(e);
      const known = this.lastKnown.get(key);
      if (known && this.withinGrace(known)) return copy(known.v) as T;
      throw this.mapError(e);
    }
    if (this.inflight.get(key) === token) {
      this.inflight.delete(key);
      this.cache.set(key, { v: copy(v) });
      this.lastKnown.set(key, { v: copy(v) });
    }
    return v;
  }

  /** An inner call whose failure callers see mapped. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    let v: T;
    try {
      v = await fn();
    } catch (e) {
      this.failed(e);
      throw this.mapError(e);
    }
    this.answered();
    return v;
  }

  private async *iterate<T>(src: () => AsyncIterable<T>): AsyncIterable<T> {
    try {
      yield* src();
    } catch (e) {
      throw this.mapError(e);
    }
  }

  /**
   * `after` is what the key holds once the write succeeded (when known without a read): the outage fallback
   * then has the newest value even for keys only ever written here.
   */
  private async write<T>(key: string, fn: () => Promise<T>, after?: (res: T) => Entry | undefined): Promise<T> {
    this.drop(key);
    let res: T;
    try {
      res = await this.run(fn);
    } catch (e) {
      // A failed write may still have landed; the others hear of it, but nobody waits on a Redis in trouble.
      // It keeps lastKnown: during an outage the old value is still the best answer.
      this.drop(key);
      void this.onChange?.(key);
      throw e;
    }
    const known = after?.(res);
    if (known) this.lastKnown.set(key, { v: copy(known.v) });
    else this.lastKnown.delete(key);
    // Again after the write: a read that started meanwhile may have loaded the old value.
    this.drop(key);
    await this.onChange?.(key);
    return res;
  }

  getTag(repo: string, tag: string): Promise<TagRecord | undefined> {
    return this.cached(memoKeys.tag(repo, tag), () => this.inner.getTag(repo, tag));
  }
  putTag(repo: string, tag: string, rec: TagRecord): Promise<void> {
    return this.write(memoKeys.tag(repo, tag), () => this.inner.putTag(repo, tag, rec), () => ({ v: rec }));
  }
  deleteTag(repo: string, tag: string): Promise<boolean> {
    return this.write(memoKeys.tag(repo, tag), () => this.inner.deleteTag(repo, tag), () => ({ v: undefined }));
  }
  listTags(repo: string, n?: number, last?: string): Promise<Page<string>> {
    return this.run(() => this.inner.listTags(repo, n, last));
  }
  tagsOf(repo: string, digest: Digest): Promise<string[]> {
    return this.run(() => this.inner.tagsOf(repo, digest));
  }

  getRepo(repo: string): Promise<RepoRecord | undefined> {
    return this.cached(memoKeys.repo(repo), () => this.inner.getRepo(repo));
  }
  markRepo(repo: string, flags: Partial<RepoRecord>): Promise<void> {
    const key = memoKeys.repo(repo);
    const known = this.lastKnown.get(key);
    // A merge: its result is known only if the record before it was (absent = both flags false; a snapshot's may be stale).
    const before = known && known.at === undefined && ((known.v as RepoRecord | undefined) ?? { local: false, mirrored: false });
    return this.write(key, () => this.inner.markRepo(repo, flags), () => (before ? { v: { ...before, ...flags } } : undefined));
  }
  listRepos(n?: number, last?: string): Promise<Page<string>> {
    return this.run(() => this.inner.listRepos(n, last));
  }
  getLink(repo: string, digest: Digest): Promise<LinkRecord | undefined> {
    return this.cached(memoKeys.link(repo, digest), () => this.inner.getLink(repo, digest));
  }
  link(repo: string, digest: Digest, rec: LinkRecord): Promise<void> {
    return this.write(memoKeys.link(repo, digest), () => this.inner.link(repo, digest, rec), () => ({ v: rec }));
  }
  unlink(repo: string, digest: Digest): Promise<boolean> {
    return this.write(memoKeys.link(repo, digest), () => this.inner.unlink(repo, digest), () => ({ v: undefined }));
  }
  referrers(repo: string, subject: Digest): Promise<Array<{ digest: Digest; link: LinkRecord }>> {
    return this.run(() => this.inner.referrers(repo, subject));
  }
  linksOf(digest: Digest): Promise<Array<{ repo: string; link: LinkRecord }>> {
    return this.run(() => this.inner.linksOf(digest));
  }
  allLinks(): AsyncIterable<{ repo: string; digest: Digest; link: LinkRecord }> {
    return this.iterate(() => this.inner.allLinks());
  }

  createUpload(rec: UploadRecord): Promise<void> {
    return this.run(() => this.inner.createUpload(rec));
  }
  getUpload(id: string): Promise<UploadRecord | undefined> {
    return this.run(() => this.inner.getUpload(id));
  }
  advanceUpload(id: string, expectedSize: number, newSize: number, now: number): Promise<boolean> {
    return this.run(() => this.inner.advanceUpload(id, expectedSize, newSize, now));
  }
  deleteUpload(id: string): Promise<boolean> {
    return this.run(() => this.inner.deleteUpload(id));
  }
  listUploads(): AsyncIterable<UploadRecord> {
    return this.iterate(() => this.inner.listUploads());
  }

  recordAccess(times: ReadonlyMap<Digest, number>): Promise<void> {
    return this.run(() => this.inner.recordAccess(times));
  }
  lastAccess(digest: Digest): Promise<number | undefined> {
    return this.run(() => this.inner.lastAccess(digest));
  }
  forgetAccess(digest: Digest): Promise<void> {
    return this.run(() => this.inner.forgetAccess(digest));
  }

  countPulls(bucket: string, counts: ReadonlyMap<string, number>, ttlMs: number, cap: number): Promise<void> {
    return this.run(() => this.inner.countPulls(bucket, counts, ttlMs, cap));
  }
  pullCounts(buckets: readonly string[]): Promise<Map<string, number>> {
    return this.run(() => this.inner.pullCounts(buckets));
  }

  getState(key: string): Promise<string | undefined> {
    return this.run(() => this.inner.getState(key));
  }
  setState(key: string, value: string, ttlMs: number): Promise<void> {
    return this.run(() => this.inner.setState(key, value, ttlMs));
  }
  claimState(key: string, value: string, ttlMs: number): Promise<string> {
    return this.run(() => this.inner.claimState(key, value, ttlMs));
  }

  ping(): Promise<void> {
    return this.run(() => this.inner.ping());
  }
  async close(): Promise<void> {
    this.cache.clear();
    this.lastKnown.clear();
    await this.inner.close();
  }
}

/** Callers may mutate what they get; the cache must not change with them. */
function copy<T>(v: T): T {
  return v === undefined ? v : structuredClone(v);
}
