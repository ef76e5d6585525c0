import {
  ErrorCode,
  MediaType,
  RegistryError,
  digestOf,
  isRegistryError,
  parseManifest,
  type Descriptor,
  type Digest,
  type ParsedManifest,
  type Reference,
} from '../oci/index.js';
import type { Origin, TagRecord } from '../store/types.js';
import type { FetchLease } from './cluster.js';
import type { CoreDeps } from './deps.js';
import type { FirstReads } from './first-reads.js';
import type { MirrorTarget, RepoAccess } from './repo-access.js';
import { ImmutableTags } from './immutable-tags.js';
import type { Prefetcher } from './prefetch.js';
import type { QuotaGate } from './quota.js';
import { SingleFlight } from './single-flight.js';
import type { ManifestResult, ManifestService, Outcome, RepoRef } from './types.js';
import { announce } from './events.js';

const OCI_TYPES = new Set<string>([MediaType.ociManifest, MediaType.ociIndex]);

/** Errors that mean "the upstream could not answer now" rather than "this does not exist". */
export function isOutage(e: unknown): boolean {
  return isRegistryError(e) && (e.code === ErrorCode.UNAVAILABLE || e.code === ErrorCode.TOOMANYREQUESTS || e.code === ErrorCode.UNKNOWN);
}

export class Manifests implements ManifestService {
  private readonly flights = new SingleFlight<ManifestResult>();
  /**
   * Manifests fetched from an upstream whose storing is still running, by flight key: served from here
   * meanwhile, so a request in that window neither misses nor costs a second upstream GET.
   */
  private readonly storing = new Map<string, ManifestResult>();
  private readonly immutable: ImmutableTags;
  /** Pushes of one tag in this process, one at a time, so an immutable tag's check and write are not interleaved. */
  private readonly tagPushes = new Map<string, Promise<unknown>>();

  constructor(
    private readonly d: CoreDeps,
    private readonly access: RepoAccess,
    private readonly quota: QuotaGate,
    private readonly firstReads: FirstReads,
    private readonly onAccess: (digest: Digest) => void = () => {},
    private readonly prefetcher?: Prefetcher,
  ) {
    this.immutable = new ImmutableTags(d.policy.immutableTags ?? [], d.namespaces);
  }

  get(repo: RepoRef, ref: Reference, accept: string[]): Promise<ManifestResult> {
    return this.answer(repo, ref, accept, true);
  }

  /** `serve`: the client gets the bytes (GET), not just the descriptor (HEAD). */
  private async answer(repo: RepoRef, ref: Reference, accept: string[], serve: boolean): Promise<ManifestResult> {
    const res = await this.negotiate(repo, ref, await this.resolve(repo, ref, serve), accept, serve);
    this.onAccess(res.descriptor.digest);
    return res;
  }

  /**
   * As GET without the bytes, except while the upstream's quota is held: an uncached tag is then resolved with an upstream HEAD
   * (free on Docker Hub), so Swarm managers can still turn tags into digests.
   */
  async head(repo: RepoRef, ref: Reference, accept: string[]): Promise<ManifestResult> {
    try {
      return await this.answer(repo, ref, accept, false);
    } catch (e) {
      if (ref.kind !== 'tag' || !isRegistryError(e) || e.code !== ErrorCode.TOOMANYREQUESTS) throw e;
      const target = await this.access.mirror(repo);
      if (!target) throw e;
      const head = await target.upstream.headManifest(repo.path, ref.tag).catch(() => undefined);
      if (head?.digest === undefined || head.size === undefined) throw e;
      this.d.metrics.cacheRequest('tag', 'miss');
      return { descriptor: { mediaType: head.mediaType, digest: head.digest, size: head.size }, bytes: Buffer.alloc(0), outcome: 'miss' };
    }
  }

  /**
   * The outcome of a request the cache answered. A manifest fetched to answer a HEAD (Docker resolves a
   * tag with HEAD, then GETs the digest) is still that pull's miss when its bytes are first served.
   */
  private counted(kind: 'manifest' | 'tag', res: ManifestResult, serve: boolean): ManifestResult {
    const digest = res.descriptor.digest;
    let outcome = res.outcome;
    if (!serve) {
      if (outcome === 'miss') this.firstReads.mark(digest);
    } else if (this.firstReads.take(digest) && (outcome === 'hit' || outcome === 'coalesced')) outcome = 'miss';
    if (outcome !== 'local') this.d.metrics.cacheRequest(kind, outcome);
    return outcome === res.outcome ? res : { ...res, outcome };
  }

  async put(repo: RepoRef, ref: Reference, contentType: string | undefined, bytes: Buffer): Promise<{ descriptor: Descriptor; subject?: Digest }> {
    if (bytes.byteLength > this.d.policy.maxManifestBytes) {
      throw new RegistryError(ErrorCode.MANIFEST_INVALID, 'manifest too large', { status: 413, detail: { limit: this.d.policy.maxManifestBytes } });
    }
    await this.access.assertPushable(repo);
    const parsed = parseManifest(bytes, contentType);
    const digest = digestOf(bytes);
    if (ref.kind === 'digest' && ref.digest !== digest) {
      throw new RegistryError(ErrorCode.DIGEST_INVALID, 'manifest digest does not match the reference', { detail: { expected: ref.digest, actual: digest } });
    }
    const tag = ref.kind === 'tag' ? ref.tag : undefined;
    // Checked before anything is stored: a refused move of an immutable tag leaves no trace.
    if (tag !== undefined && this.immutable.rule(repo, tag)) this.immutable.assertMayPoint(repo, tag, (await this.d.meta.getTag(repo.key, tag))?.digest, digest);
    await this.assertReferencesExist(repo, parsed);
    await this.access.storeBytes(digest, bytes);
    await this.linkManifest(repo, digest, bytes.byteLength, parsed, 'local');
    if (tag !== undefined) {
      const rec = { digest, mediaType: parsed.mediaType, size: bytes.byteLength, checkedAt: this.d.now(), origin: 'local' as const };
      if (this.immutable.rule(repo, tag)) {
        await this.serialTag(tagKey(repo, tag), async () => {
          const current = (await this.d.meta.getTag(repo.key, tag))?.digest;
          this.immutable.assertMayPoint(repo, tag, current, digest);
          if (current === undefined) {
            // A new immutable tag: the first replica to claim it wins; a racing push of another digest is refused.
            const first = await this.d.meta.claimState(immutableClaimKey(repo, tag), digest, IMMUTABLE_CLAIM_MS);
            this.immutable.assertMayPoint(repo, tag, first as Digest, digest);
          }
          await this.d.meta.putTag(repo.key, tag, rec);
        });
      } else {
        await this.d.meta.putTag(repo.key, tag, rec);
      }
    }
    return { descriptor: { mediaType: parsed.mediaType, digest, size: bytes.byteLength }, subject: parsed.subject?.digest };
  }

  async delete(repo: RepoRef, ref: Reference): Promise<string[]> {
    if (ref.kind === 'tag') {
      const rec = await this.d.meta.getTag(repo.key, ref.tag);
      if (!rec) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { tag: ref.tag } });
      if (rec.origin !== 'local') throw new RegistryError(ErrorCode.UNSUPPORTED, 'mirrored tags cannot be deleted; they follow the upstream');
      this.immutable.assertMayDelete(repo, [ref.tag], `tag ${ref.tag}`);
      await this.d.meta.deleteTag(repo.key, ref.tag);
      return [ref.tag];
    }
    const link = await this.d.meta.getLink(repo.key, ref.digest);
    if (!link || link.kind !== 'manifest') throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { digest: ref.digest } });
    if (link.origin !== 'local') throw new RegistryError(ErrorCode.UNSUPPORTED, 'mirrored manifests cannot be deleted; use wharf purge');
    const tags = await this.d.meta.tagsOf(repo.key, ref.digest);
    this.immutable.assertMayDelete(repo, tags, `manifest ${ref.digest}`);
    for (const tag of tags) await this.d.meta.deleteTag(repo.key, tag);
    await this.d.meta.unlink(repo.key, ref.digest);
    return tags;
  }

  /** Runs `fn` after every earlier call for the same key in this process has settled. */
  private async serialTag(key: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.tagPushes.get(key) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(fn);
    this.tagPushes.set(key, run);
    try {
      await run;
    } finally {
      if (this.tagPushes.get(key) === run) this.tagPushes.delete(key);
    }
  }

  private async resolve(repo: RepoRef, ref: Reference, serve: boolean): Promise<ManifestResult> {
    return ref.kind === 'digest' ? this.counted('manifest', await this.byDigest(repo, ref.digest), serve) : this.counted('tag', await this.byTag(repo, ref.tag), serve);
  }

  private async byDigest(repo: RepoRef, digest: Digest): Promise<ManifestResult> {
    const key = digestKey(repo, digest);
    const storing = this.storing.get(key);
    // Its fetch is over and its bytes are here, on their way to the disk: a hit, not a join.
    if (storing) return { ...storing, outcome: 'hit' };
    const link = await this.d.meta.getLink(repo.key, digest);
    if (link?.kind === 'manifest') {
      const bytes = await this.access.readBytes(digest);
      if (bytes) {
        return { descriptor: { mediaType: link.mediaType ?? MediaType.ociManifest, digest, size: bytes.byteLength }, bytes, outcome: link.origin === 'local' ? 'local' : 'hit' };
      }
    }
    const target = await this.access.mirror(repo);
    if (!target) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { digest } });
    const { promise, joined } = this.flights.run(key, () => this.fetch(repo, target, digest));
    const res = await promise;
    return joined ? { ...res, outcome: 'coalesced' } : res;
  }

  private async byTag(repo: RepoRef, tag: string): Promise<ManifestResult> {
    const key = tagKey(repo, tag);
    const storing = this.storing.get(key);
    if (storing) return { ...storing, outcome: 'hit' };
    const rec = await this.d.meta.getTag(repo.key, tag);
    const target = await this.access.mirror(repo);
    if (rec && (rec.origin === 'local' || !target)) return this.fromTag(rec, 'local');
    if (!target) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { tag } });
    if (rec && this.d.now() - rec.checkedAt < target.policy.tagFreshness) {
      const res = await this.fromTag(rec, 'hit').catch(() => undefined);
      if (res) return res;
      // Its manifest was evicted while the tag stayed fresh: the digest is still the upstream's answer,
      // so fetch the bytes by digest without asking for the tag again.
      return this.byDigest(repo, rec.digest);
    }
    if (!rec && (await this.d.meta.getState(negativeKey(repo, tag)))) {
      throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, 'manifest unknown upstream (remembered)', { detail: { tag } });
    }
    if (rec && this.d.cluster && !(await this.d.cluster.claimRevalidation(repo.key, tag, target.policy.tagFreshness))) {
      // Another replica is revalidating (or just did) this tag in this window: serve what the cluster knows.
      const current = (await this.d.meta.getTag(repo.key, tag)) ?? rec;
      const res = await this.fromTag(current, 'hit').catch(() => undefined);
      if (res) return res;
    }
    const { promise, joined } = this.flights.run(key, () => this.revalidate(repo, target, tag, rec));
    const res = await promise;
    return joined ? { ...res, outcome: 'coalesced' } : res;
  }

  /**
   * A tag past its freshness window: HEAD first (free against Docker Hub's pull limit); GET only when
   * the digest moved. Any outage with a cached digest serves that digest (`stale`).
   */
  private async revalidate(repo: RepoRef, target: MirrorTarget, tag: string, rec: TagRecord | undefined): Promise<ManifestResult> {
    try {
      if (rec) {
        const since = this.d.now();
        const head = await target.upstream.headManifest(repo.path, tag).finally(() => this.quota.record(target.upstream, since));
        if (head.digest === rec.digest) {
          const res = await this.fromTag(rec, 'hit').catch(() => undefined);
          if (res) {
            await this.d.meta.putTag(repo.key, tag, { ...rec, checkedAt: this.d.now() });
            return res;
          }
        }
        const moved = await this.fetch(repo, target, head.digest ?? tag, tag);
        if (moved.descriptor.digest !== rec.digest) announce(this.d, 'tag-moved', repo, { kind: 'manifest', ...moved.descriptor, tag });
        return moved;
      }
      return await this.fetch(repo, target, tag, tag);
    } catch (e) {
      if (rec && isOutage(e)) {
        this.d.logger.warn({ upstream: repo.upstream, err: (e as Error).message }, 'upstream unavailable; serving cached tag');
        const res = await this.fromTag(rec, 'stale').catch(() => undefined);
        if (res) return res;
      }
      if (isRegistryError(e) && e.code === ErrorCode.MANIFEST_UNKNOWN) {
        await this.d.meta.setState(negativeKey(repo, tag), '1', target.policy.notFoundTtl);
        if (rec) await this.d.meta.deleteTag(repo.key, tag);
      }
      throw e;
    }
  }

  private tagRecord(res: ManifestResult): TagRecord {
    return { digest: res.descriptor.digest, mediaType: res.descriptor.mediaType, size: res.descriptor.size, checkedAt: this.d.now(), origin: 'upstream' };
  }

  /**
   * GET from upstream (by tag or digest); answered as soon as it is here, while it is stored byte-for-byte
   * and linked (and `tag` pointed at it). Shared by every waiting client, so no client's signal is passed
   * on: one hanging up must not fail the others.
   */
  private async fetch(repo: RepoRef, target: MirrorTarget, ref: string, tag?: string): Promise<ManifestResult> {
    const cluster = this.d.cluster;
    if (!cluster) return this.fetchNow(repo, target, ref, tag);
    const name = `manifest:${repo.key}:${tag ?? ref}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      let lease: FetchLease | undefined;
      try {
        lease = await cluster.claimLease(name);
      } catch {
        return this.fetchNow(repo, target, ref, tag); // Redis unreachable: fetch here rather than fail
      }
      if (lease) {
        const held = lease;
        try {
          // released once stored and tagged: a replica that waited then finds it in the shared store
          return await this.fetchNow(repo, target, ref, tag, (done) => void done.finally(() => held.release().catch(() => undefined)));
        } catch (e) {
          await held.release().catch(() => undefined);
          throw e;
        }
      }
      // Another replica is fetching it: one upstream GET for the cluster; its answer lands in the shared store.
      await cluster.waitForLease(name).catch(() => undefined);
      const found = await this.fromShared(repo, ref, tag, target.policy.tagFreshness);
      if (found) return found;
    }
    return this.fetchNow(repo, target, ref, tag);
  }

  /** What another replica's fetch left in the shared store (undefined when it failed); its 404 is ours too. */
  private async fromShared(repo: RepoRef, ref: string, tag: string | undefined, freshness: number): Promise<ManifestResult | undefined> {
    if (tag !== undefined) {
      const rec = await this.d.meta.getTag(repo.key, tag);
      if (rec && this.d.now() - rec.checkedAt < freshness) return this.fromTag(rec, 'coalesced').catch(() => undefined);
      if (await this.d.meta.getState(negativeKey(repo, tag))) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, 'manifest unknown upstream', { detail: { tag } });
      return undefined;
    }
    const link = await this.d.meta.getLink(repo.key, ref as Digest);
    if (link?.kind !== 'manifest') return undefined;
    const bytes = await this.access.readBytes(ref as Digest);
    if (!bytes) return undefined;
    return { descriptor: { mediaType: link.mediaType ?? MediaType.ociManifest, digest: ref as Digest, size: bytes.byteLength }, bytes, outcome: 'coalesced' };
  }

  /** `onStored` learns when the fetched manifest is stored, linked and tagged (or failed to be). */
  private async fetchNow(repo: RepoRef, target: MirrorTarget, ref: string, tag?: string, onStored?: (done: Promise<void>) => void): Promise<ManifestResult> {
    const m = await this.quotaGet(target, repo.path, ref);
    let parsed: ParsedManifest | undefined;
    try {
      parsed = parseManifest(m.bytes, m.mediaType);
    } catch {
      parsed = undefined; // stored and served as the upstream sent it; it just references nothing we track
    }
    // An image manifest (not an index: which platform the client wants is not known) names the blobs it
    // asks for next; their downloads start while the manifest is being stored.
    if (parsed && parsed.manifests.length === 0) this.prefetcher?.enqueue(repo, parsed.blobs, target.policy.prefetch);
    const mediaType = parsed?.mediaType ?? m.mediaType;
    const res: ManifestResult = { descriptor: { mediaType, digest: m.digest, size: m.bytes.byteLength }, bytes: m.bytes, outcome: 'miss' };
    const done = this.store(repo, res, parsed, tag);
    onStored?.(done);
    return res;
  }

  /**
   * Stores, links and tags a fetched manifest after its client was answered: its bytes are final (the
   * upstream client checked them against the digest asked for, or named them by their own), and three
   * fsyncs in a row had been ~10 ms of every cold manifest request. Until it is done the manifest is
   * served from `storing`.
   */
  private store(repo: RepoRef, res: ManifestResult, parsed: ParsedManifest | undefined, tag: string | undefined): Promise<void> {
    const { digest, size, mediaType } = res.descriptor;
    const keys = [digestKey(repo, digest), ...(tag === undefined ? [] : [tagKey(repo, tag)])];
    for (const k of keys) this.storing.set(k, res);
    // Fresh from the moment the upstream answered, not from when the disk was done with it.
    const tagged = tag === undefined ? undefined : { tag, rec: this.tagRecord(res) };
    const work = (async () => {
      await this.access.storeBytes(digest, res.bytes);
      await this.linkManifest(repo, digest, size, parsed, 'upstream', mediaType);
      if (tagged) await this.d.meta.putTag(repo.key, tagged.tag, tagged.rec);
      announce(this.d, 'cache', repo, { kind: 'manifest', mediaType, digest, size, tag, references: parsed && [...parsed.blobs, ...parsed.manifests] });
    })();
    const done = work
      .catch((e: unknown) => {
        this.d.metrics.cacheWriteError();
        this.d.logger.error({ upstream: repo.upstream, digest, err: (e as Error).message }, 'storing a mirrored manifest failed; it was served, not cached');
      })
      .finally(() => {
        for (const k of keys) if (this.storing.get(k) === res) this.storing.delete(k);
      });
    this.access.pending.track(repo.key, done);
    return done;
  }

  /**
   * A manifest GET counts against the upstream's pull quota. Replicas share what they learn of the quota
   * (core/quota.ts): after a 429 none sends one before its Retry-After; with the quota exhausted, none until
   * a probe HEAD shows it is back.
   */
  private async quotaGet(target: MirrorTarget, path: string, ref: string) {
    await this.quota.admit(target.upstream, target.policy.quotaProbeInterval, { path, ref });
    const since = this.d.now();
    try {
      return await target.upstream.manifest(path, ref);
    } finally {
      await this.quota.record(target.upstream, since);
    }
  }

  private async fromTag(rec: TagRecord, outcome: Outcome): Promise<ManifestResult> {
    const bytes = await this.access.readBytes(rec.digest);
    if (!bytes) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, 'manifest content missing', { detail: { digest: rec.digest } });
    return { descriptor: { mediaType: rec.mediaType, digest: rec.digest, size: bytes.byteLength }, bytes, outcome };
  }

  private async linkManifest(repo: RepoRef, digest: Digest, size: number, parsed: ParsedManifest | undefined, origin: Origin, mediaType?: string): Promise<void> {
    await this.access.link(repo, digest, {
      kind: 'manifest',
      size,
      origin,
      mediaType: mediaType ?? parsed?.mediaType,
      subject: parsed?.subject?.digest,
      artifactType: parsed?.artifactType,
      annotations: parsed?.annotations,
      refs: parsed ? [...parsed.blobs, ...parsed.manifests].map((d) => d.digest) : [],
    });
  }

  private async assertReferencesExist(repo: RepoRef, parsed: ParsedManifest): Promise<void> {
    const missing: Digest[] = [];
    for (const b of parsed.blobs) {
      const link = await this.d.meta.getLink(repo.key, b.digest);
      if (!link || !(await this.d.store.stat(b.digest))) missing.push(b.digest);
    }
    for (const m of parsed.manifests) {
      const link = await this.d.meta.getLink(repo.key, m.digest);
      if (link?.kind !== 'manifest') missing.push(m.digest);
    }
    if (missing.length > 0) throw new RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, undefined, { detail: { missing } });
  }

  /**
   * Answers a client whose Accept excludes the stored type as Distribution 2.8 does: OCI types are
   * MANIFEST_UNKNOWN; a manifest list asked for by tag is answered with its linux/amd64 manifest.
   * Docker schema2 is served as-is (wharf does not down-convert to schema1).
   */
  private async negotiate(repo: RepoRef, ref: Reference, res: ManifestResult, accept: string[], serve: boolean): Promise<ManifestResult> {
    const type = res.descriptor.mediaType;
    if (accept.length === 0 || accept.includes('*/*') || accept.includes(type)) return res;
    if (OCI_TYPES.has(type)) {
      throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, `${type === MediaType.ociIndex ? 'OCI index' : 'OCI manifest'} found, but accept header does not support it`);
    }
    if (type === MediaType.dockerManifestList && ref.kind === 'tag') {
      const list = parseManifest(res.bytes, type);
      const amd64 = list.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
      if (!amd64) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, 'could not find a matching manifest list platform');
      return this.resolve(repo, { kind: 'digest', digest: amd64.digest }, serve);
    }
    return res;
  }
}

function digestKey(repo: RepoRef, digest: Digest): string {
  return `m:${repo.key}@${digest}`;
}

/** How long the first push of a new immutable tag holds its claim: far longer than writing the tag takes. */
const IMMUTABLE_CLAIM_MS = 5 * 60_000;

function immutableClaimKey(repo: RepoRef, tag: string): string {
  return `immutable-tag:${repo.key}:${tag}`;
}

function tagKey(repo: RepoRef, tag: string): string {
  return `t:${repo.key}:${tag}`;
}

function negativeKey(repo: RepoRef, tag: string): string {
  return `neg:${repo.key}:${tag}`;
}
