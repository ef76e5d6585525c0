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
import type { CoreDeps } from './deps.js';
import type { MirrorTarget, RepoAccess } from './repo-access.js';
import type { Prefetcher } from './prefetch.js';
import { SingleFlight } from './single-flight.js';
import type { ManifestResult, ManifestService, Outcome, RepoRef } from './types.js';
import { announce } from './events.js';

const OCI_TYPES = new Set<string>([MediaType.ociManifest, MediaType.ociIndex]);

/** Errors that mean "the upstream could not answer now" rather than "this does not exist". */
function isOutage(e: unknown): boolean {
  return isRegistryError(e) && (e.code === ErrorCode.UNAVAILABLE || e.code === ErrorCode.TOOMANYREQUESTS || e.code === ErrorCode.UNKNOWN);
}

export class Manifests implements ManifestService {
  private readonly flights = new SingleFlight<ManifestResult>();
  /**
   * Manifests fetched from an upstream whose storing is still running, by flight key: served from here
   * meanwhile, so a request in that window neither misses nor costs a second upstream GET.
   */
  private readonly storing = new Map<string, ManifestResult>();

  constructor(
    private readonly d: CoreDeps,
    private readonly access: RepoAccess,
    private readonly onAccess: (digest: Digest) => void = () => {},
    private readonly prefetcher?: Prefetcher,
  ) {}

  async get(repo: RepoRef, ref: Reference, accept: string[]): Promise<ManifestResult> {
    const res = await this.negotiate(repo, ref, await this.resolve(repo, ref), accept);
    this.onAccess(res.descriptor.digest);
    return res;
  }

  head(repo: RepoRef, ref: Reference, accept: string[]): Promise<ManifestResult> {
    return this.get(repo, ref, accept);
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
    await this.assertReferencesExist(repo, parsed);
    await this.access.storeBytes(digest, bytes);
    await this.linkManifest(repo, digest, bytes.byteLength, parsed, 'local');
    if (ref.kind === 'tag') {
      await this.d.meta.putTag(repo.key, ref.tag, { digest, mediaType: parsed.mediaType, size: bytes.byteLength, checkedAt: this.d.now(), origin: 'local' });
    }
    return { descriptor: { mediaType: parsed.mediaType, digest, size: bytes.byteLength }, subject: parsed.subject?.digest };
  }

  async delete(repo: RepoRef, ref: Reference): Promise<string[]> {
    if (ref.kind === 'tag') {
      const rec = await this.d.meta.getTag(repo.key, ref.tag);
      if (!rec) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { tag: ref.tag } });
      if (rec.origin !== 'local') throw new RegistryError(ErrorCode.UNSUPPORTED, 'mirrored tags cannot be deleted; they follow the upstream');
      await this.d.meta.deleteTag(repo.key, ref.tag);
      return [ref.tag];
    }
    const link = await this.d.meta.getLink(repo.key, ref.digest);
    if (!link || link.kind !== 'manifest') throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { digest: ref.digest } });
    if (link.origin !== 'local') throw new RegistryError(ErrorCode.UNSUPPORTED, 'mirrored manifests cannot be deleted; use wharf purge');
    const tags = await this.d.meta.tagsOf(repo.key, ref.digest);
    for (const tag of tags) await this.d.meta.deleteTag(repo.key, tag);
    await this.d.meta.unlink(repo.key, ref.digest);
    return tags;
  }

  private async resolve(repo: RepoRef, ref: Reference): Promise<ManifestResult> {
    return ref.kind === 'digest' ? this.byDigest(repo, ref.digest) : this.byTag(repo, ref.tag);
  }

  private async byDigest(repo: RepoRef, digest: Digest): Promise<ManifestResult> {
    const key = digestKey(repo, digest);
    const storing = this.storing.get(key);
    if (storing) {
      // Its fetch is over and its bytes are here, on their way to the disk: a hit, not a join.
      this.d.metrics.cacheRequest('manifest', 'hit');
      return { ...storing, outcome: 'hit' };
    }
    const link = await this.d.meta.getLink(repo.key, digest);
    if (link?.kind === 'manifest') {
      const bytes = await this.access.readBytes(digest);
      if (bytes) {
        this.d.metrics.cacheRequest('manifest', 'hit');
        return { descriptor: { mediaType: link.mediaType ?? MediaType.ociManifest, digest, size: bytes.byteLength }, bytes, outcome: link.origin === 'local' ? 'local' : 'hit' };
      }
    }
    const target = await this.access.mirror(repo);
    if (!target) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { digest } });
    const { promise, joined } = this.flights.run(key, () => this.fetch(repo, target, digest));
    const res = await promise;
    this.d.metrics.cacheRequest('manifest', joined ? 'coalesced' : 'miss');
    return joined ? { ...res, outcome: 'coalesced' } : res;
  }

  private async byTag(repo: RepoRef, tag: string): Promise<ManifestResult> {
    const key = tagKey(repo, tag);
    const storing = this.storing.get(key);
    if (storing) {
      this.d.metrics.cacheRequest('tag', 'hit');
      return { ...storing, outcome: 'hit' };
    }
    const rec = await this.d.meta.getTag(repo.key, tag);
    const target = await this.access.mirror(repo);
    if (rec && (rec.origin === 'local' || !target)) return this.fromTag(rec, 'local');
    if (!target) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, undefined, { detail: { tag } });
    if (rec && this.d.now() - rec.checkedAt < target.policy.tagFreshness) {
      const res = await this.fromTag(rec, 'hit').catch(() => undefined);
      if (res) {
        this.d.metrics.cacheRequest('tag', 'hit');
        return res;
      }
    }
    if (!rec && (await this.d.meta.getState(negativeKey(repo, tag)))) {
      throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, 'manifest unknown upstream (remembered)', { detail: { tag } });
    }
    if (rec && this.d.cluster && !(await this.d.cluster.claimRevalidation(repo.key, tag, target.policy.tagFreshness))) {
      // Another replica is revalidating (or just did) this tag in this window: serve what the cluster knows.
      const current = (await this.d.meta.getTag(repo.key, tag)) ?? rec;
      const res = await this.fromTag(current, 'hit').catch(() => undefined);
      if (res) {
        this.d.metrics.cacheRequest('tag', 'hit');
        return res;
      }
    }
    const { promise, joined } = this.flights.run(key, () => this.revalidate(repo, target, tag, rec));
    const res = await promise;
    this.d.metrics.cacheRequest('tag', joined ? 'coalesced' : res.outcome === 'stale' ? 'stale' : res.outcome === 'hit' ? 'hit' : 'miss');
    return joined ? { ...res, outcome: 'coalesced' } : res;
  }

  /**
   * A tag past its freshness window: HEAD first (free against Docker Hub's pull limit); GET only when
   * the digest moved. Any outage with a cached digest serves that digest (`stale`).
   */
  private async revalidate(repo: RepoRef, target: MirrorTarget, tag: string, rec: TagRecord | undefined): Promise<ManifestResult> {
    try {
      if (rec) {
        const head = await target.upstream.headManifest(repo.path, tag);
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
    this.store(repo, res, parsed, tag);
    return res;
  }

  /**
   * Stores, links and tags a fetched manifest after its client was answered: its bytes are final (the
   * upstream client checked them against the digest asked for, or named them by their own), and three
   * fsyncs in a row had been ~10 ms of every cold manifest request. Until it is done the manifest is
   * served from `storing`.
   */
  private store(repo: RepoRef, res: ManifestResult, parsed: ParsedManifest | undefined, tag: string | undefined): void {
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
    this.access.pending.track(
      repo.key,
      work
        .catch((e: unknown) => {
          this.d.metrics.cacheWriteError();
          this.d.logger.error({ upstream: repo.upstream, digest, err: (e as Error).message }, 'storing a mirrored manifest failed; it was served, not cached');
        })
        .finally(() => {
          for (const k of keys) if (this.storing.get(k) === res) this.storing.delete(k);
        }),
    );
  }

  /**
   * A manifest GET counts against the upstream's pull quota. Replicas share what they learn of the quota:
   * after one of them saw a 429 or an exhausted quota, none sends quota-consuming requests until it reopens.
   */
  private async quotaGet(target: MirrorTarget, path: string, ref: string) {
    const key = `throttle:${target.upstream.name}`;
    const until = Number((await this.d.meta.getState(key)) ?? 0);
    const now = this.d.now();
    if (until > now) {
      this.d.metrics.throttled(target.upstream.name);
      throw new RegistryError(ErrorCode.TOOMANYREQUESTS, `upstream ${target.upstream.name} is rate-limiting; held back`, {
        headers: { 'Retry-After': String(Math.ceil((until - now) / 1000)) },
      });
    }
    try {
      return await target.upstream.manifest(path, ref);
    } finally {
      const next = target.upstream.throttledUntil?.();
      if (next !== undefined && next > now) await this.d.meta.setState(key, String(next), next - now).catch(() => undefined);
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
  private async negotiate(repo: RepoRef, ref: Reference, res: ManifestResult, accept: string[]): Promise<ManifestResult> {
    const type = res.descriptor.mediaType;
    if (accept.length === 0 || accept.includes('*/*') || accept.includes(type)) return res;
    if (OCI_TYPES.has(type)) {
      throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, `${type === MediaType.ociIndex ? 'OCI index' : 'OCI manifest'} found, but accept header does not support it`);
    }
    if (type === MediaType.dockerManifestList && ref.kind === 'tag') {
      const list = parseManifest(res.bytes, type);
      const amd64 = list.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
      if (!amd64) throw new RegistryError(ErrorCode.MANIFEST_UNKNOWN, 'could not find a matching manifest list platform');
      return this.resolve(repo, { kind: 'digest', digest: amd64.digest });
    }
    return res;
  }
}

function digestKey(repo: RepoRef, digest: Digest): string {
  return `m:${repo.key}@${digest}`;
}

function tagKey(repo: RepoRef, tag: string): string {
  return `t:${repo.key}:${tag}`;
}

function negativeKey(repo: RepoRef, tag: string): string {
  return `neg:${repo.key}:${tag}`;
}
