import type { Digest } from '../oci/index.js';
import { Blobs } from './blob-service.js';
import type { CoreDeps } from './deps.js';
import { FirstReads } from './first-reads.js';
import { Manifests } from './manifest-service.js';
import { Prefetcher } from './prefetch.js';
import { QuotaGate } from './quota.js';
import { RepoAccess } from './repo-access.js';
import { Referrers } from './referrers.js';
import { Catalog, Tags } from './tag-service.js';
import type { Registry } from './types.js';
import { Uploads } from './upload-service.js';

/** Builds the core services over one set of dependencies. */
export function createRegistry(
  d: CoreDeps,
  hooks: { onAccess?: (digest: Digest) => void } = {},
): Registry & {
  blobService: Blobs;
  /** refreshes this replica's rate-limit gauges from the cluster's shared quota state (before a scrape) */
  reportQuota(): Promise<void>;
  /** resolves once writes that outlived their request are done, or after `limitMs` (a disk that stopped answering) */
  settle(limitMs?: number): Promise<void>;
} {
  const access = new RepoAccess(d);
  const firstReads = new FirstReads();
  const blobs = new Blobs(d, access, firstReads, hooks.onAccess);
  const prefetcher = new Prefetcher((repo, digest) => blobs.fetchAhead(repo, digest), d.metrics, d.logger);
  const quota = new QuotaGate(d);
  const manifests = new Manifests(d, access, quota, firstReads, hooks.onAccess, prefetcher);
  return {
    namespaces: d.namespaces,
    manifests,
    blobs,
    blobService: blobs,
    uploads: new Uploads(d, access),
    tags: new Tags(d, access),
    catalog: new Catalog(d, access.pending),
    referrers: new Referrers(d, access, manifests),
    overlays: (repo) => access.isOverlay(repo),
    reportQuota: () => quota.report(d.policy.upstreams.keys()),
    settle: async (limitMs = Infinity) => {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<void>((r) => {
        if (limitMs !== Infinity) timer = setTimeout(r, limitMs);
      });
      await Promise.race([Promise.all([access.pending.settled(), blobs.settled()]), limit]);
      clearTimeout(timer);
    },
  };
}
