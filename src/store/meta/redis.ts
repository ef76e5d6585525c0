import type { Cluster, Redis } from 'ioredis';
import type { Digest } from '../../oci/index.js';
import type {
  LinkRecord,
  MetadataStore,
  Page,
  RepoRecord,
  TagRecord,
  UploadRecord,
} from '../types.js';
import { lexCompare } from './paging.js';
import { RedisKeys } from './redis-keys.js';
import { storedLink } from './link-record.js';

export interface RedisStoreOptions {
  keyPrefix: string;
  now?: () => number;
}

/** size CAS: KEYS[1]=upload hash; ARGV = expected, new, now. */
const ADVANCE_UPLOAD = `
local cur = redis.call('HGET', KEYS[1], 'size')
if not cur or cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'size', ARGV[2], 'updatedAt', ARGV[3])
return 1`;

/** HSET with max semantics: KEYS[1]=access hash; ARGV = digest, ms, digest, ms, ... */
const RECORD_ACCESS = `
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]))
  local new = tonumber(ARGV[i + 1])
  if not cur or cur < new then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 0`;

/**
 * Capped counters with expiry: KEYS[1]=bucket hash; ARGV = ttl ms, cap, name, n, name, n, ... A name not yet in
 * the bucket is added only while it holds fewer than `cap`; the expiry is set by the first write.
 */
const COUNT_PULLS = `
local cap = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 or redis.call('HLEN', KEYS[1]) < cap then
    redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 0`;

const PAGE = 200;

/**
 * MetadataStore shared by replicas through Redis (standalone or Cluster).
 *
 * Operations spanning hash slots, and why they stay correct on Cluster (no cross-slot MULTI anywhere):
 * - link/unlink touch the repository's slot and the digest's reverse index `d:<digest>` (and `linked`): the
 *   reverse index is written before the link and cleared after it, so it is always a superset; linksOf
 *   verifies each entry against the repository's links hash.
 * - markRepo writes the repo hash, then the `repos` zset.
 * - listRepos pages one zset (one slot); allLinks pages the `linked` zset and HSCANs each repository's links
 *   hash: every command is single-key, so no SCAN across cluster nodes is needed.
 * - createUpload/deleteUpload pair `u:<id>` with the `uploads` id set; listUploads skips ids whose hash is gone.
 */
export class RedisMetadataStore implements MetadataStore {
  readonly kind = 'redis' as const;
  private readonly k: RedisKeys;
  readonly now: () => number;

  constructor(
    private readonly redis: Redis | Cluster,
    opts: RedisStoreOptions,
  ) {
    this.k = new RedisKeys(opts.keyPrefix);
    this.now = opts.now ?? Date.now;
  }

  // --- tags
  async getTag(repo: string, tag: string): Promise<TagRecord | undefined> {
    return parse<TagRecord>(await this.redis.hget(this.k.tagRecords(repo), tag));
  }
  async putTag(repo: string, tag: string, rec: TagRecord): Promise<void> {
    await this.redis
      .multi()
      .zadd(this.k.tags(repo), 0, tag)
      .hset(this.k.tagRecords(repo), tag, JSON.stringify(rec))
      .exec()
      .then(checkExec);
  }
  async deleteTag(repo: string, tag: string): Promise<boolean> {
    const res = checkExec(await this.redis.multi().zrem(this.k.tags(repo), tag).hdel(this.k.tagRecords(repo), tag).exec());
    return res[1] === 1;
  }
  async listTags(repo: string, n?: number, last?: string): Promise<Page<string>> {
    return lexPage(this.redis, this.k.tags(repo), n, last);
  }
  async tagsOf(repo: string, digest: Digest): Promise<string[]> {
    const all = await this.redis.hgetall(this.k.tagRecords(repo));
    const out: string[] = [];
    for (const [tag, json] of Object.entries(all)) if (parse<TagRecord>(json)?.digest === digest) out.push(tag);
    return out.sort(lexCompare);
  }

  // --- repos and links
  async getRepo(repo: string): Promise<RepoRecord | undefined> {
    const h = await this.redis.hgetall(this.k.repoRecord(repo));
    if (h.local === undefined && h.mirrored === undefined) return undefined;
    return { local: h.local === '1', mirrored: h.mirrored === '1' };
  }
  async markRepo(repo: string, flags: Partial<RepoRecord>): Promise<void> {
    const key = this.k.repoRecord(repo);
    const m = this.redis.multi().hsetnx(key, 'local', '0').hsetnx(key, 'mirrored', '0');
    if (flags.local !== undefined) m.hset(key, 'local', flags.local ? '1' : '0');
    if (flags.mirrored !== undefined) m.hset(key, 'mirrored', flags.mirrored ? '1' : '0');
    checkExec(await m.exec());
    await this.redis.zadd(this.k.repos, 0, repo);
  }
  async listRepos(n?: number, last?: string): Promise<Page<string>> {
    return lexPage(this.redis, this.k.repos, n, last);
  }
  async link(repo: string, digest: Digest, rec: LinkRecord): Promise<void> {
    // Indexes in other slots first, so they are never missing an existing link.
    await Promise.all([this.redis.sadd(this.k.digestRepos(digest), repo), this.redis.zadd(this.k.linked, 0, repo)]);
    const m = this.redis.multi().hset(this.k.links(repo), digest, JSON.stringify(rec));
    if (rec.subject) m.sadd(this.k.referrers(repo, rec.subject), digest);
    checkExec(await m.exec());
  }
  async getLink(repo: string, digest: Digest): Promise<LinkRecord | undefined> {
    return parseLink(await this.redis.hget(this.k.links(repo), digest));
  }
  async unlink(repo: string, digest: Digest): Promise<boolean> {
    const old = parseLink(await this.redis.hget(this.k.links(repo), digest));
    if (!old) return false;
    const m = this.redis.multi().hdel(this.k.links(repo), digest);
    if (old.subject) m.srem(this.k.referrers(repo, old.subject), digest);
    const removed = checkExec(await m.exec())[0] === 1;
    await this.redis.srem(this.k.digestRepos(digest), repo);
    // A link() racing in between would now be missing from the reverse index: put it back.
    if ((await this.redis.hexists(this.k.links(repo), digest)) === 1) await this.redis.sadd(this.k.digestRepos(digest), repo);
    return removed;
  }
  async referrers(repo: string, subject: Digest): Promise<Array<{ digest: Digest; link: LinkRecord }>> {
    const digests = (await this.redis.smembers(this.k.referrers(repo, subject))).sort(lexCompare) as Digest[];
    if (digests.length === 0) return [];
    const values = await this.redis.hmget(this.k.links(repo), ...digests);
    const out: Array<{ digest: Digest; link: LinkRecord }> = [];
    digests.forEach((digest, i) => {
      const link = parseLink(values[i] ?? null);
      if (link?.kind === 'manifest' && link.subject === subject) out.push({ digest, link });
    });
    return out;
  }
  async linksOf(digest: Digest): Promise<Array<{ repo: string; link: LinkRecord }>> {
    const repos = (await this.redis.smembers(this.k.digestRepos(digest))).sort(lexCompare);
    // One command per repository: they live in different slots, so no pipeline/MULTI across them.
    const links = await Promise.all(repos.map((r) => this.redis.hget(this.k.links(r), digest)));
    const out: Array<{ repo: string; link: LinkRecord }> = [];
    repos.forEach((repo, i) => {
      const link = parseLink(links[i] ?? null);
      if (link) out.push({ repo, link });
    });
    return out;
  }
  async *allLinks(): AsyncIterable<{ repo: string; digest: Digest; link: LinkRecord }> {
    let last: string | undefined;
    for (;;) {
      const page = await lexPage(this.redis, this.k.linked, PAGE, last);
      for (const repo of page.items) {
        let cursor = '0';
        do {
          const [next, flat] = await this.redis.hscan(this.k.links(repo), cursor, 'COUNT', PAGE);
          cursor = next;
          for (let i = 0; i + 1 < flat.length; i += 2) {
            const link = parseLink(flat[i + 1] ?? null);
            if (link) yield { repo, digest: flat[i] as Digest, link };
          }
        } while (cursor !== '0');
      }
      if (page.next === undefined) return;
      last = page.next;
    }
  }

  // --- uploads
  async createUpload(rec: UploadRecord): Promise<void> {
    await this.redis.hset(this.k.upload(rec.id), {
      id: rec.id,
      repo: rec.repo,
      writerId: rec.writerId,
      size: String(rec.size),
      startedAt: String(rec.startedAt),
      updatedAt: String(rec.updatedAt),
    });
    await this.redis.sadd(this.k.uploads, rec.id);
  }
  async getUpload(id: string): Promise<UploadRecord | undefined> {
    return toUpload(await this.redis.hgetall(this.k.upload(id)));
  }
  async advanceUpload(id: string, expectedSize: number, newSize: number, now: number): Promise<boolean> {
    const r = await this.redis.eval(ADVANCE_UPLOAD, 1, this.k.upload(id), String(expectedSize), String(newSize), String(now));
    return r === 1;
  }
  async deleteUpload(id: string): Promise<boolean> {
    const n = await this.redis.del(this.k.upload(id));
    await this.redis.srem(this.k.uploads, id);
    return n === 1;
  }
  async *listUploads(): AsyncIterable<UploadRecord> {
    let cursor = '0';
    do {
      const [next, ids] = await this.redis.sscan(this.k.uploads, cursor, 'COUNT', PAGE);
      cursor = next;
      for (const id of ids) {
        const u = toUpload(await this.redis.hgetall(this.k.upload(id)));
        if (u) yield u;
      }
    } while (cursor !== '0');
  }

  // --- access times
  async recordAccess(times: ReadonlyMap<Digest, number>): Promise<void> {
    if (times.size === 0) return;
    const args: string[] = [];
    for (const [d, t] of times) args.push(d, String(t));
    await this.redis.eval(RECORD_ACCESS, 1, this.k.access, ...args);
  }
  async lastAccess(digest: Digest): Promise<number | undefined> {
    const v = await this.redis.hget(this.k.access, digest);
    return v === null ? undefined : Number(v);
  }
  async forgetAccess(digest: Digest): Promise<void> {
    await this.redis.hdel(this.k.access, digest);
  }

  // --- pull counts
  async countPulls(bucket: string, counts: ReadonlyMap<string, number>, ttlMs: number, cap: number): Promise<void> {
    if (counts.size === 0) return;
    const args: string[] = [String(Math.max(1, Math.ceil(ttlMs))), String(cap)];
    for (const [name, n] of counts) args.push(name, String(Math.trunc(n)));
    await this.redis.eval(COUNT_PULLS, 1, this.k.pulls(bucket), ...args);
  }
  async pullCounts(buckets: readonly string[]): Promise<Map<string, number>> {
    // One slot for every bucket ({P pulls}): fetched together, as ioredis pipelines commands sent at once.
    const all = await Promise.all([...new Set(buckets)].map((b) => this.redis.hgetall(this.k.pulls(b))));
    const out = new Map<string, number>();
    for (const h of all) {
      for (const [name, v] of Object.entries(h)) {
        const n = Number(v);
        if (Number.isFinite(n)) out.set(name, (out.get(name) ?? 0) + n);
      }
    }
    return out;
  }

  // --- shared state
  async getState(key: string): Promise<string | undefined> {
    return (await this.redis.get(this.k.state(key))) ?? undefined;
  }
  async setState(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.k.state(key), value, 'PX', Math.max(1, Math.ceil(ttlMs)));
  }

  async claimState(key: string, value: string, ttlMs: number): Promise<string> {
    const k = this.k.state(key);
    // SET NX then GET (SET NX GET needs Redis 7); a value expiring in between means: try again.
    for (let attempt = 0; attempt < 3; attempt++) {
      if ((await this.redis.set(k, value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) !== null) return value;
      const held = await this.redis.get(k);
      if (held !== null) return held;
    }
    throw new Error(`shared state ${key} keeps expiring while claimed`);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }
  async close(): Promise<void> {
    if (this.redis.status === 'end') return;
    // quit() fails while Redis is down; disconnect() also stops the reconnect loop, or the process would stay up.
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

async function lexPage(redis: Redis | Cluster, key: string, n?: number, last?: string): Promise<Page<string>> {
  if (n !== undefined && n <= 0) return { items: [] };
  const min = last === undefined ? '-' : `(${last}`;
  if (n === undefined) return { items: await redis.zrangebylex(key, min, '+') };
  const got = await redis.zrangebylex(key, min, '+', 'LIMIT', 0, n + 1);
  if (got.length <= n) return { items: got };
  const items = got.slice(0, n);
  return { items, next: items[items.length - 1] as string };
}

function parseLink(json: string | null): LinkRecord | undefined {
  const link = parse<LinkRecord>(json);
  return link && storedLink(link);
}

function parse<T>(json: string | null): T | undefined {
  if (json === null) return undefined;
  try {
    return JSON.parse(json) as T;
  } catch {
    return undefined;
  }
}

function toUpload(h: Record<string, string>): UploadRecord | undefined {
  if (h.id === undefined || h.repo === undefined || h.writerId === undefined) return undefined;
  return {
    id: h.id,
    repo: h.repo,
    writerId: h.writerId,
    size: Number(h.size),
    startedAt: Number(h.startedAt),
    updatedAt: Number(h.updatedAt),
  };
}

/** MULTI results: throws the first command error, returns the replies. */
function checkExec(res: Array<[Error | null, unknown]> | null): unknown[] {
  if (res === null) throw new Error('redis transaction aborted');
  return res.map(([err, v]) => {
    if (err) throw err;
    return v;
  });
}
