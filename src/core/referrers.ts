import { ErrorCode, MediaType, isRegistryError, parseManifest, type Digest } from '../oci/index.js';
import type { ReferrerDescriptor } from '../upstream/types.js';
import type { CoreDeps } from './deps.js';
import { isOutage } from './manifest-service.js';
import type { MirrorTarget, RepoAccess } from './repo-access.js';
import { SingleFlight } from './single-flight.js';
import type { ManifestService, ReferrersService, RepoRef } from './types.js';

/** How long a mirrored repository's last referrers answer is kept to serve while the upstream is down. */
const KEEP_MS = 7 * 24 * 3600_000;

interface CachedReferrers {
  /** ms epoch of the upstream's answer */
  at: number;
  manifests: ReferrerDescriptor[];
}

/** The referrers tag schema's tag for a digest: `<alg>-<hex>`, at most 128 characters. */
export function referrersTag(digest: Digest): string {
  return digest.replace(':', '-').slice(0, 128);
}

/**
 * end-12a/12b: manifests whose `subject` is a digest. Local ones from the metadata store; for a mirrored
 * repository also the upstream's, asked of its referrers API (or, where it answers 404, read from the
 * tag schema's `<alg>-<hex>` index through wharf like any tag), cached for the upstream's tag freshness
 * and served from that cache while the upstream is down.
 */
export class Referrers implements ReferrersService {
  private readonly flights = new SingleFlight<ReferrerDescriptor[]>();

  constructor(
    private readonly d: CoreDeps,
    private readonly access: RepoAccess,
    private readonly manifests: ManifestService,
  ) {}

  async list(repo: RepoRef, subject: Digest, artifactType: string | undefined): Promise<{ index: Buffer; filtered: boolean }> {
    const byDigest = new Map<string, ReferrerDescriptor>();
    const target = await this.access.mirror(repo);
    if (target) for (const m of await this.mirrored(repo, target, subject)) byDigest.set(m.digest, m);
    for (const { digest, link } of await this.d.meta.referrers(repo.key, subject)) {
      byDigest.set(digest, {
        mediaType: link.mediaType ?? MediaType.ociManifest,
        digest,
        size: link.size,
        ...(link.artifactType ? { artifactType: link.artifactType } : {}),
        ...(link.annotations ? { annotations: link.annotations } : {}),
      });
    }
    const manifests = [...byDigest.values()]
      .filter((m) => artifactType === undefined || m.artifactType === artifactType)
      .sort((a, b) => (a.digest < b.digest ? -1 : 1));
    const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests };
    return { index: Buffer.from(JSON.stringify(index)), filtered: artifactType !== undefined };
  }

  private async mirrored(repo: RepoRef, target: MirrorTarget, subject: Digest): Promise<ReferrerDescriptor[]> {
    const key = `referrers:${repo.key}@${subject}`;
    const cached = parseCached(await this.d.meta.getState(key));
    if (cached && this.d.now() - cached.at < target.policy.tagFreshness) {
      this.d.metrics.referrers('hit');
      return cached.manifests;
    }
    try {
      const { promise } = this.flights.run(key, async () => {
        const manifests = await this.fromUpstream(repo, target, subject);
        const entry: CachedReferrers = { at: this.d.now(), manifests };
        await this.d.meta.setState(key, JSON.stringify(entry), KEEP_MS).catch(() => undefined);
        return manifests;
      });
      const manifests = await promise;
      this.d.metrics.referrers('miss');
      return manifests;
    } catch (e) {
      if (!isOutage(e)) throw e;
      this.d.logger.warn({ upstream: repo.upstream, err: (e as Error).message }, 'upstream referrers unavailable; serving the last known list');
      this.d.metrics.referrers('stale');
      return cached?.manifests ?? [];
    }
  }

  private async fromUpstream(repo: RepoRef, target: MirrorTarget, subject: Digest): Promise<ReferrerDescriptor[]> {
    const api = await target.upstream.referrers?.(repo.path, subject);
    if (api !== undefined) return api;
    // No referrers API: the tag schema, fetched (and cached, counted, evicted) as any mirrored tag is.
    let res;
    try {
      res = await this.manifests.get(repo, { kind: 'tag', tag: referrersTag(subject) }, [MediaType.ociIndex]);
    } catch (e) {
      if (isRegistryError(e) && e.code === ErrorCode.MANIFEST_UNKNOWN) return [];
      throw e;
    }
    return parseManifest(res.bytes, res.descriptor.mediaType).manifests.map((m) => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      ...(m.artifactType ? { artifactType: m.artifactType } : {}),
      ...(m.annotations ? { annotations: m.annotations } : {}),
    }));
  }
}

function parseCached(raw: string | undefined): CachedReferrers | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as CachedReferrers;
    return typeof v.at === 'number' && Array.isArray(v.manifests) ? v : undefined;
  } catch {
    return undefined;
  }
}
