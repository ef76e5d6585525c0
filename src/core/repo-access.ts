import { LRUCache } from 'lru-cache';
import { ErrorCode, RegistryError, type Digest } from '../oci/index.js';
import type { Upstream } from '../upstream/types.js';
import type { LinkRecord, RepoRecord } from '../store/types.js';
import type { CoreDeps } from './deps.js';
import { PendingWrites } from './pending-writes.js';
import { overlayMatcher, type UpstreamPolicy } from './policy.js';
import { single } from './streams.js';
import type { RepoRef } from './types.js';

export interface MirrorTarget {
  upstream: Upstream;
  policy: UpstreamPolicy;
}

/**
 * Who may read and write a repository: whether it can go upstream (a local repository never does,
 * unless it is an overlay), whether a push is allowed, and the one way content gets linked into it.
 */
/** Manifests are small, immutable by digest and read on every tag request: keep the hot ones in memory. */
const MANIFEST_CACHE_BYTES = 64 * 1024 * 1024;

export class RepoAccess {
  private readonly overlay: (path: string) => boolean;
  private readonly localNamespace: (path: string) => boolean;
  private readonly small = new LRUCache<Digest, Buffer>({ maxSize: MANIFEST_CACHE_BYTES, sizeCalculation: (b) => Math.max(1, b.length) });

  /** Mirrored manifests still being stored after their client was answered (see Manifests.store). */
  readonly pending = new PendingWrites();

  constructor(private readonly d: CoreDeps) {
    this.overlay = overlayMatcher(d.policy.overlay);
    this.localNamespace = overlayMatcher(d.policy.localNamespaces);
  }

  /**
   * The repository's record, as of every write that has started: a repository wharf has no record of may
   * have its first manifest still being stored (a pull's next request or a push can come that soon).
   */
  async record(repo: RepoRef): Promise<RepoRecord | undefined> {
    const rec = await this.d.meta.getRepo(repo.key);
    if (rec || !this.pending.has(repo.key)) return rec;
    await this.pending.settled(repo.key);
    return this.d.meta.getRepo(repo.key);
  }

  isOverlay(repo: RepoRef): boolean {
    return repo.upstream !== undefined && this.matches(this.overlay, repo);
  }

  /** Under `localNamespaces`: local before its first push, so no read of it ever goes upstream. */
  isLocalNamespace(repo: RepoRef): boolean {
    return this.matches(this.localNamespace, repo);
  }

  /** Patterns match the path within its upstream (`team/app`) or the name as clients write it (`ghcr.io/acme/tool`). */
  private matches(match: (name: string) => boolean, repo: RepoRef): boolean {
    return match(repo.path) || match(this.d.namespaces.displayName(repo.key));
  }

  /** The upstream reads of this repository may go to, or undefined for a local repository. */
  async mirror(repo: RepoRef, rec?: RepoRecord): Promise<MirrorTarget | undefined> {
    if (repo.upstream === undefined || this.isLocalNamespace(repo)) return undefined;
    // No wait for pending stores here: they only ever mark a repository mirrored, never local.
    const state = rec ?? (await this.d.meta.getRepo(repo.key));
    if (state?.local && !this.isOverlay(repo)) return undefined;
    const target = this.d.policy.upstreams.get(repo.upstream);
    return target;
  }

  async assertPushable(repo: RepoRef): Promise<void> {
    if (repo.upstream === undefined || this.isLocalNamespace(repo)) return;
    const rec = await this.record(repo);
    if (rec?.mirrored && !rec.local && !this.isOverlay(repo)) {
      throw new RegistryError(ErrorCode.DENIED, 'repository holds mirrored content; pushing here is allowed only for push.overlay patterns', {
        detail: { repository: this.d.namespaces.displayName(repo.key) },
      });
    }
  }

  async link(repo: RepoRef, digest: Digest, rec: Omit<LinkRecord, 'linkedAt'>): Promise<void> {
    await this.d.meta.link(repo.key, digest, { ...rec, linkedAt: this.d.now() });
    await this.d.meta.markRepo(repo.key, rec.origin === 'local' ? { local: true } : { mirrored: true });
  }

  /** Stores bytes under their digest unless already present (identical content is stored once). */
  async storeBytes(digest: Digest, bytes: Buffer): Promise<void> {
    if (await this.d.store.stat(digest)) return;
    const w = await this.d.store.create(undefined, { digest });
    try {
      await w.write(single(bytes));
      await w.commit(digest, bytes.length);
    } finally {
      await w.release().catch(() => {});
    }
  }

  /** Bytes of a small blob (a manifest). Callers check the repository's link first: the cache holds content, not access. */
  async readBytes(digest: Digest): Promise<Buffer | undefined> {
    const hit = this.small.get(digest);
    if (hit) return hit;
    const s = await this.d.store.read(digest);
    if (!s) return undefined;
    const parts: Buffer[] = [];
    for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
    const bytes = Buffer.concat(parts);
    this.small.set(digest, bytes);
    return bytes;
  }
}
