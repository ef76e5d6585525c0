import { Readable } from 'node:stream';
import { ErrorCode, RegistryError, isRegistryError, type Digest } from '../oci/index.js';
import { BlobFetch } from './blob-fetch.js';
import type { FetchLease } from './cluster.js';
import type { CoreDeps } from './deps.js';
import type { FirstReads } from './first-reads.js';
import { resolveRange } from './ranges.js';
import type { MirrorTarget, RepoAccess } from './repo-access.js';
import type { BlobBody, BlobService, Outcome, RangeRequest, RepoRef } from './types.js';
import { announce } from './events.js';

interface Inflight {
  fetch: BlobFetch;
  repoKey: string;
  /** set for the downloads in the table (the dashboard lists them) */
  upstream?: string;
  startedAt?: number;
  /** the download, its commit and its link all done (or failed); absent for a fetch in no table */
  finished?: Promise<void>;
}

/** One download from an upstream running in this process, as the dashboard shows it. */
export interface InflightDownload {
  /** canonical key of the repository it was fetched for */
  repoKey: string;
  digest: Digest;
  upstream: string;
  /** bytes received so far */
  received: number;
  /** full size, once the upstream has said */
  size?: number;
  /** clients reading it now */
  clients: number;
  startedAt: number;
}

/**
 * Blob reads: linked content from disk; misses from the repository's upstream through one shared
 * BlobFetch per digest (in this process), whatever the number of clients.
 */
export class Blobs implements BlobService {
  private readonly inflight = new Map<Digest, Inflight>();

  constructor(
    private readonly d: CoreDeps,
    private readonly access: RepoAccess,
    private readonly firstReads: FirstReads,
    private readonly onAccess: (digest: Digest) => void = () => {},
  ) {}

  async stat(repo: RepoRef, digest: Digest, signal?: AbortSignal): Promise<{ digest: Digest; size: number; outcome: Outcome }> {
    const local = await this.linkedStat(repo, digest);
    if (local) return { digest, size: local, outcome: 'hit' };
    const rec = await this.access.record(repo);
    // A pull starts with a manifest, so a blob HEAD in a repository wharf has never seen is a push
    // checking what to upload: asking the upstream would leak a new internal name to it.
    if (!rec) throw blobUnknown(digest);
    const target = await this.access.mirror(repo, rec);
    if (!target) throw blobUnknown(digest);
    const running = this.inflight.get(digest);
    if (running?.repoKey === repo.key && running.fetch.size !== undefined) return { digest, size: running.fetch.size, outcome: 'coalesced' };
    const head = await target.upstream.headBlob(repo.path, digest, signal);
    const st = await this.d.store.stat(digest);
    if (st) {
      // The bytes are here already (fetched for another repository); the upstream just confirmed this one has them too.
      await this.access.link(repo, digest, { kind: 'blob', size: st.size, origin: 'upstream' });
      return { digest, size: st.size, outcome: 'hit' };
    }
    if (head.size === undefined) throw new RegistryError(ErrorCode.UNAVAILABLE, 'upstream did not report the blob size');
    return { digest, size: head.size, outcome: 'miss' };
  }

  async open(repo: RepoRef, digest: Digest, range: RangeRequest | undefined, signal?: AbortSignal): Promise<BlobBody> {
    const link = await this.d.meta.getLink(repo.key, digest);
    if (link) {
      const body = await this.fromLinked(digest, link.size, range);
      if (body) return body;
    }
    const target = await this.access.mirror(repo);
    if (!target) throw blobUnknown(digest);
    // This repository's own download, proven and committing or linking: its upstream has vouched for the
    // digest already, so join it rather than ask the upstream again (a HEAD per blob on a fast client).
    const own = this.inflight.get(digest);
    if (own?.repoKey === repo.key && own.fetch.proven) return this.fromUpstream(repo, target, digest, range, signal);

    const st = await this.d.store.stat(digest);
    if (st) {
      await target.upstream.headBlob(repo.path, digest, signal);
      await this.access.link(repo, digest, { kind: 'blob', size: st.size, origin: 'upstream' });
      const body = await this.fromDisk(digest, st.size, range);
      if (body) return body;
    }
    return this.fromUpstream(repo, target, digest, range, signal);
  }

  async delete(repo: RepoRef, digest: Digest): Promise<void> {
    const link = await this.d.meta.getLink(repo.key, digest);
    if (!link || link.kind !== 'blob') throw blobUnknown(digest);
    if (link.origin !== 'local') throw new RegistryError(ErrorCode.UNSUPPORTED, 'mirrored blobs cannot be deleted; use wharf purge');
    // Only the link goes: the bytes may be shared with other repositories (gc reclaims unreferenced ones).
    await this.d.meta.unlink(repo.key, digest);
  }

  /** Size of content linked to this repository and present on disk. */
  private async linkedStat(repo: RepoRef, digest: Digest): Promise<number | undefined> {
    const link = await this.d.meta.getLink(repo.key, digest);
    if (!link) return undefined;
    const st = await this.d.store.stat(digest);
    return st?.size;
  }

  /**
   * Content linked to this repository, from the store. Object storage serving the bytes itself is read in one
   * GetObject at the size the link recorded (it answers "absent" too) rather than after a HeadObject, a round
   * trip more per blob GET. A redirect sends the client to the bucket, so wharf looks there first; the
   * filesystem's stat is cheap and stays.
   */
  private async fromLinked(digest: Digest, linkedSize: number, req: RangeRequest | undefined): Promise<BlobBody | undefined> {
    const store = this.d.store;
    const redirect = await store.redirectUrl?.(digest);
    if (store.readSized && redirect === undefined) {
      const range = req ? resolveRange(req, linkedSize) : undefined;
      const stream = await store.readSized(digest, linkedSize, range);
      if (stream) return this.fromCache(digest, linkedSize, range, stream);
      // Absent (evicted, or removed behind wharf's back), or not the size linked: look, as any other store.
    }
    const st = await store.stat(digest);
    return st ? this.fromDisk(digest, st.size, req, redirect) : undefined;
  }

  private async fromDisk(digest: Digest, size: number, req: RangeRequest | undefined, redirectUrl?: string): Promise<BlobBody | undefined> {
    const range = req ? resolveRange(req, size) : undefined;
    // Object storage with redirect: the client fetches the bytes from the bucket (Range and all).
    const redirect = redirectUrl ?? (await this.d.store.redirectUrl?.(digest));
    const stream = redirect ? Readable.from([]) : await this.d.store.read(digest, range);
    if (!stream) return undefined;
    return this.fromCache(digest, size, range, stream, redirect);
  }

  private fromCache(digest: Digest, size: number, range: BlobBody['range'], stream: Readable, redirect?: string): BlobBody {
    // Fetched ahead for the pull now reading it: the upstream did serve these bytes for this client.
    const outcome = this.firstReads.take(digest) ? 'miss' : 'hit';
    this.d.metrics.cacheRequest('blob', outcome);
    this.onAccess(digest);
    return { size, range, stream, source: 'cache', outcome, ...(redirect ? { redirect } : {}) };
  }

  private async fromUpstream(repo: RepoRef, target: MirrorTarget, digest: Digest, req: RangeRequest | undefined, signal?: AbortSignal): Promise<BlobBody> {
    let entry = this.inflight.get(digest);
    // A download whose cache write failed keeps only a window of bytes in memory: start afresh instead of joining.
    let outcome: Outcome = 'coalesced';
    if (entry?.fetch.degraded) {
      const fetch = this.newFetch(target, repo, digest);
      fetch.close(); // in no table: its file goes as soon as it settles and its reader is done
      entry = { fetch, repoKey: repo.key };
      outcome = 'miss';
    }
    if (entry && entry.repoKey !== repo.key) {
      // Joining another repository's download: this repository's upstream must vouch for the digest first.
      await target.upstream.headBlob(repo.path, digest, signal);
    }
    if (!entry) {
      if (this.d.cluster) {
        const claimed = await this.claimAcrossCluster(repo, target, digest, req, signal);
        if ('stream' in claimed) return claimed;
        entry = claimed.entry;
      } else {
        entry = this.startFetch(repo, target, digest);
      }
      outcome = 'miss';
    }
    const { fetch } = entry;
    await fetch.started;
    // Failed before this client got anything: answer with the error rather than a cut-off body.
    if (fetch.failed) throw fetch.failed;
    if (entry.repoKey !== repo.key) {
      void fetch.done.then((desc) => this.access.link(repo, digest, { kind: 'blob', size: desc.size, origin: 'upstream' })).catch(() => {});
    }
    let size = fetch.size;
    if (size === undefined) size = (await fetch.done).size; // no Content-Length upstream: only then wait for the whole blob
    const range = req ? resolveRange(req, size) : undefined;
    // Joining a prefetch started for this very pull is this pull's miss, not a shared download.
    if (this.firstReads.take(digest)) outcome = 'miss';
    this.d.metrics.cacheRequest('blob', outcome);
    return { size, range, stream: fetch.reader(range), source: 'upstream', outcome };
  }

  /**
   * Cluster mode: one replica fetches; the others stream from it while it does, or read the shared
   * store once it has committed. When the holder dies its lease expires and one waiter takes over.
   */
  private async claimAcrossCluster(
    repo: RepoRef,
    target: MirrorTarget,
    digest: Digest,
    req: RangeRequest | undefined,
    signal?: AbortSignal,
  ): Promise<BlobBody | { entry: Inflight }> {
    const cluster = this.d.cluster!;
    // Bytes another replica fetched may have been asked for under another repository: as on one replica, this
    // repository's upstream vouches for the digest before a byte is served or a link made (once per request).
    let vouched = false;
    const vouch = async (): Promise<void> => {
      if (vouched) return;
      await target.upstream.headBlob(repo.path, digest, signal);
      vouched = true;
    };
    for (;;) {
      const local = this.inflight.get(digest);
      if (local) return { entry: local };
      const claim = await cluster.claimFetch(digest);
      if (claim.kind === 'mine') {
        // Another replica may have committed between our miss and the claim.
        const st = await this.d.store.stat(digest);
        if (st) {
          await claim.lease.release();
          await vouch();
          await this.access.link(repo, digest, { kind: 'blob', size: st.size, origin: 'upstream' });
          const body = await this.fromDisk(digest, st.size, req);
          if (body) return body;
        }
        return { entry: this.startFetch(repo, target, digest, claim.lease) };
      }
      await vouch();
      const peer = await cluster.streamFromPeer(claim.holder, digest, req, signal).catch(() => undefined);
      if (peer) {
        this.d.metrics.cacheRequest('blob', 'coalesced');
        peer.stream.once('end', () => void this.linkWhenCommitted(repo, digest));
        return { size: peer.size, range: peer.range, stream: peer.stream, source: 'upstream', outcome: 'coalesced' };
      }
      await cluster.waitForRelease(digest, signal);
      const st = await this.d.store.stat(digest);
      if (st) {
        await this.access.link(repo, digest, { kind: 'blob', size: st.size, origin: 'upstream' });
        const body = await this.fromDisk(digest, st.size, req);
        if (body) return body;
      }
      // Released without a commit (failure or a dead holder): claim again; one waiter wins.
    }
  }

  private async linkWhenCommitted(repo: RepoRef, digest: Digest): Promise<void> {
    await this.d.cluster?.waitForRelease(digest).catch(() => {});
    const st = await this.d.store.stat(digest);
    if (st) await this.access.link(repo, digest, { kind: 'blob', size: st.size, origin: 'upstream' });
  }

  /** The in-flight download of a blob in this process, for a peer replica streaming from us. */
  inflightBody(digest: Digest, req: RangeRequest | undefined): BlobBody | undefined {
    const entry = this.inflight.get(digest);
    if (!entry || entry.fetch.size === undefined || entry.fetch.failed) return undefined;
    const range = req ? resolveRange(req, entry.fetch.size) : undefined;
    return { size: entry.fetch.size, range, stream: entry.fetch.reader(range), source: 'upstream', outcome: 'coalesced' };
  }

  private newFetch(target: MirrorTarget, repo: RepoRef, digest: Digest): BlobFetch {
    return new BlobFetch({
      store: this.d.store,
      upstream: target.upstream,
      repoPath: repo.path,
      digest,
      timeoutMs: this.d.policy.fetchTimeout,
      resumeAttempts: this.d.policy.resumeAttempts,
      onCacheWriteError: (err) => {
        this.d.metrics.cacheWriteError();
        this.d.logger.error({ digest, err: err.message }, 'cache write failed; serving the blob from upstream without caching it');
      },
    });
  }

  /**
   * Layer prefetch (see prefetch.ts): starts the download a client would start on a miss, without a
   * client, unless the blob is cached or already on its way here or on another replica.
   */
  async fetchAhead(repo: RepoRef, digest: Digest): Promise<'fetched' | 'present'> {
    if (this.inflight.has(digest) || (await this.d.store.stat(digest))) return 'present';
    const target = await this.access.mirror(repo);
    if (!target) throw new Error('the repository no longer mirrors an upstream');
    let lease: FetchLease | undefined;
    if (this.d.cluster) {
      const claim = await this.d.cluster.claimFetch(digest);
      if (claim.kind !== 'mine') return 'present';
      lease = claim.lease;
    }
    // Another replica may have committed it between our look and the claim.
    if (lease && (await this.d.store.stat(digest))) {
      await lease.release();
      return 'present';
    }
    // No await from here to startFetch: a client's download started meanwhile is seen, never doubled.
    if (this.inflight.has(digest)) {
      await lease?.release();
      return 'present';
    }
    this.firstReads.mark(digest);
    await this.startFetch(repo, target, digest, lease).fetch.done;
    return 'fetched';
  }

  /**
   * Resolves once the downloads being published now (content proven, so their clients may have their last
   * byte already; the fsync, rename and link follow) are done: shutdown waits for these, not for downloads
   * still running. An entry leaves the table only after its link.
   */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].filter((e) => e.fetch.proven).map((e) => e.finished));
  }

  /** The downloads running in this process now, oldest first (the dashboard's "in flight"). */
  downloads(): InflightDownload[] {
    const out: InflightDownload[] = [];
    for (const [digest, e] of this.inflight) {
      if (e.upstream === undefined || e.startedAt === undefined) continue;
      const { fetch } = e;
      out.push({ repoKey: e.repoKey, digest, upstream: e.upstream, received: fetch.received, ...(fetch.size !== undefined ? { size: fetch.size } : {}), clients: fetch.clients, startedAt: e.startedAt });
    }
    return out.sort((a, b) => a.startedAt - b.startedAt);
  }

  /** true while a blob is being downloaded into the cache (eviction must leave it alone). */
  isBusy(digest: Digest): boolean {
    return this.inflight.has(digest);
  }

  private startFetch(repo: RepoRef, target: MirrorTarget, digest: Digest, lease?: FetchLease): Inflight {
    const fetch = this.newFetch(target, repo, digest);
    const entry: Inflight = { fetch, repoKey: repo.key, upstream: target.upstream.name, startedAt: this.d.now() };
    this.inflight.set(digest, entry);
    this.d.metrics.inflightFetches(1);
    entry.finished = fetch.done
      .then(async (desc) => {
        await this.access.link(repo, digest, { kind: 'blob', size: desc.size, origin: 'upstream' });
        this.onAccess(digest);
        announce(this.d, 'cache', repo, { kind: 'blob', digest, size: desc.size });
      })
      .catch((e: unknown) => {
        if (isRegistryError(e) && e.code === ErrorCode.DIGEST_INVALID) {
          this.d.metrics.digestMismatch(target.upstream.name);
          this.d.logger.error({ upstream: target.upstream.name, digest }, 'upstream sent bytes that do not match the digest; nothing cached');
        } else {
          this.d.logger.warn({ upstream: target.upstream.name, digest, err: (e as Error).message }, 'blob fetch failed');
        }
      })
      .finally(() => {
        this.inflight.delete(digest);
        fetch.close();
        void lease?.release().catch(() => {});
        this.d.metrics.inflightFetches(-1);
      });
    return entry;
  }
}

function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError(ErrorCode.BLOB_UNKNOWN, undefined, { detail: { digest } });
}
