import { mkdir } from 'node:fs/promises';
import type { Digest } from '../../oci/index.js';
import type {
  LinkRecord,
  MetadataStore,
  Page,
  RepoRecord,
  TagRecord,
  UploadRecord,
} from '../types.js';
import { Journal, replay } from './journal.js';
import { acquireLock } from './lock.js';
import { MemoryState, type Op } from './memory-state.js';
import { lexCompare, pageOf } from './paging.js';
import { PullBuckets } from './pull-buckets.js';

export interface EmbeddedOptions {
  now?: () => number;
  /** Journal size that triggers a compaction into the snapshot (default 16 MiB). */
  compactBytes?: number;
}

export interface RecoveryInfo {
  tornTail: boolean;
  skippedLines: number;
  replayedOps: number;
}

/**
 * Single-process metadata store: maps in memory, made durable by a group-committed JSON-lines journal that is
 * folded into a snapshot on open and whenever it grows past `compactBytes`.
 */
export class EmbeddedMetadataStore implements MetadataStore {
  readonly kind = 'embedded' as const;
  private closed = false;
  private readonly pulls: PullBuckets;

  private constructor(
    private readonly s: MemoryState,
    private readonly journal: Journal,
    private readonly unlock: () => Promise<void>,
    private readonly now: () => number,
    /** what open() found: a torn last line is normal after a crash and was ignored */
    readonly recovery: RecoveryInfo,
  ) {
    this.pulls = new PullBuckets(now);
  }

  static async open(dir: string, opts: EmbeddedOptions = {}): Promise<EmbeddedMetadataStore> {
    await mkdir(dir, { recursive: true });
    const unlock = await acquireLock(dir);
    try {
      const now = opts.now ?? Date.now;
      const found = await replay(dir);
      const s = new MemoryState();
      if (found.snapshot) s.load(found.snapshot);
      for (const op of found.ops) s.apply(op);
      const journal = await Journal.start(dir, () => s.snapshot(now()), opts.compactBytes ?? 16 * 1024 * 1024);
      return new EmbeddedMetadataStore(s, journal, unlock, now, {
        tornTail: found.tornTail,
        skippedLines: found.skipped,
        replayedOps: found.ops.length,
      });
    } catch (e) {
      await unlock();
      throw e;
    }
  }

  /**
   * Applies in memory at once (a check and its change stay in one tick), resolves when the journal line is
   * durable; should the line fail to be written, the change is undone before anyone can read it again.
   */
  private commit(op: Op): Promise<void> {
    if (this.closed) return Promise.reject(new Error('metadata store is closed'));
    return this.journal.append(op, this.s.applyUndoable(op));
  }

  // --- tags
  async getTag(repo: string, tag: string): Promise<TagRecord | undefined> {
    const t = this.s.tags.get(repo)?.get(tag);
    return t && { ...t };
  }
  putTag(repo: string, tag: string, rec: TagRecord): Promise<void> {
    return this.commit({ op: 'tag', r: repo, t: tag, v: { ...rec } });
  }
  async deleteTag(repo: string, tag: string): Promise<boolean> {
    if (!this.s.tags.get(repo)?.has(tag)) return false;
    await this.commit({ op: 'untag', r: repo, t: tag });
    return true;
  }
  async listTags(repo: string, n?: number, last?: string): Promise<Page<string>> {
    return pageOf(this.s.tagNames(repo), n, last);
  }
  async tagsOf(repo: string, digest: Digest): Promise<string[]> {
    const out: string[] = [];
    for (const [t, rec] of this.s.tags.get(repo) ?? []) if (rec.digest === digest) out.push(t);
    return out.sort(lexCompare);
  }

  // --- repos and links
  async getRepo(repo: string): Promise<RepoRecord | undefined> {
    const r = this.s.repos.get(repo);
    return r && { ...r };
  }
  markRepo(repo: string, flags: Partial<RepoRecord>): Promise<void> {
    const known = this.s.repos.get(repo);
    const old = known ?? { local: false, mirrored: false };
    const v: RepoRecord = { local: flags.local ?? old.local, mirrored: flags.mirrored ?? old.mirrored };
    // Marked so already (every blob linked into a mirrored repository asks again): no new line to sync,
    // only the wait for the one that said so, should it still be on its way to the disk.
    if (known && known.local === v.local && known.mirrored === v.mirrored && !this.closed) return this.journal.settled();
    return this.commit({ op: 'repo', r: repo, v });
  }
  async listRepos(n?: number, last?: string): Promise<Page<string>> {
    return pageOf(this.s.repoNames(), n, last);
  }
  link(repo: string, digest: Digest, rec: LinkRecord): Promise<void> {
    return this.commit({ op: 'link', r: repo, d: digest, v: structuredClone(rec) });
  }
  async getLink(repo: string, digest: Digest): Promise<LinkRecord | undefined> {
    const l = this.s.links.get(repo)?.get(digest);
    return l && structuredClone(l);
  }
  async unlink(repo: string, digest: Digest): Promise<boolean> {
    if (!this.s.links.get(repo)?.has(digest)) return false;
    await this.commit({ op: 'unlink', r: repo, d: digest });
    return true;
  }
  async referrers(repo: string, subject: Digest): Promise<Array<{ digest: Digest; link: LinkRecord }>> {
    const out: Array<{ digest: Digest; link: LinkRecord }> = [];
    for (const [digest, link] of this.s.links.get(repo) ?? []) {
      if (link.kind === 'manifest' && link.subject === subject) out.push({ digest, link: structuredClone(link) });
    }
    return out.sort((a, b) => lexCompare(a.digest, b.digest));
  }
  async linksOf(digest: Digest): Promise<Array<{ repo: string; link: LinkRecord }>> {
    const out: Array<{ repo: string; link: LinkRecord }> = [];
    for (const repo of this.s.digestRepos.get(digest) ?? []) {
      const link = this.s.links.get(repo)?.get(digest);
      if (link) out.push({ repo, link: structuredClone(link) });
    }
    return out.sort((a, b) => lexCompare(a.repo, b.repo));
  }
  async *allLinks(): AsyncIterable<{ repo: string; digest: Digest; link: LinkRecord }> {
    // Copies per repository so callers may unlink while iterating (gc does).
    for (const repo of [...this.s.links.keys()]) {
      for (const [digest, link] of [...(this.s.links.get(repo) ?? [])]) yield { repo, digest, link: structuredClone(link) };
    }
  }

  // --- uploads
  createUpload(rec: UploadRecord): Promise<void> {
    return this.commit({ op: 'upload', v: { ...rec } });
  }
  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const u = this.s.uploads.get(id);
    return u && { ...u };
  }
  async advanceUpload(id: string, expectedSize: number, newSize: number, now: number): Promise<boolean> {
    const u = this.s.uploads.get(id);
    if (!u || u.size !== expectedSize) return false;
    // The check and the in-memory apply happen in one tick, so this is a real compare-and-set.
    await this.commit({ op: 'upload', v: { ...u, size: newSize, updatedAt: now } });
    return true;
  }
  async deleteUpload(id: string): Promise<boolean> {
    if (!this.s.uploads.has(id)) return false;
    await this.commit({ op: 'unupload', id });
    return true;
  }
  async *listUploads(): AsyncIterable<UploadRecord> {
    for (const u of [...this.s.uploads.values()]) yield { ...u };
  }

  // --- access times
  async recordAccess(times: ReadonlyMap<Digest, number>): Promise<void> {
    if (times.size === 0) return;
    await this.commit({ op: 'access', m: [...times] });
  }
  async lastAccess(digest: Digest): Promise<number | undefined> {
    return this.s.access.get(digest);
  }
  async forgetAccess(digest: Digest): Promise<void> {
    if (!this.s.access.has(digest)) return;
    await this.commit({ op: 'unaccess', d: digest });
  }

  // --- pull counts (memory only: see PullBuckets)
  countPulls(bucket: string, counts: ReadonlyMap<string, number>, ttlMs: number, cap: number): Promise<void> {
    return this.pulls.countPulls(bucket, counts, ttlMs, cap);
  }
  pullCounts(buckets: readonly string[]): Promise<Map<string, number>> {
    return this.pulls.pullCounts(buckets);
  }

  // --- shared state
  async getState(key: string): Promise<string | undefined> {
    const e = this.s.state.get(key);
    if (!e) return undefined;
    if (e.exp <= this.now()) {
      this.s.state.delete(key); // expiry needs no journal line: replay drops it by time too
      return undefined;
    }
    return e.v;
  }
  setState(key: string, value: string, ttlMs: number): Promise<void> {
    return this.commit({ op: 'state', k: key, v: value, exp: this.now() + ttlMs });
  }
  /** One process owns the embedded store; callers that race within it serialise themselves. */
  async claimState(key: string, value: string, ttlMs: number): Promise<string> {
    const held = await this.getState(key);
    if (held !== undefined) return held;
    await this.setState(key, value, ttlMs);
    return value;
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('metadata store is closed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.journal.close(true);
    } finally {
      await this.unlock();
    }
  }
}
