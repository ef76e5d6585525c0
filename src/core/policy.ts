import { repoMatcher } from '../oci/index.js';
import type { Upstream } from '../upstream/types.js';

/** Per-upstream freshness rules. */
export interface UpstreamPolicy {
  /** tags confirmed less than this long ago are served with no upstream request */
  tagFreshness: number;
  /** an upstream 404 for a tag is remembered this long */
  notFoundTtl: number;
  /** while the quota is exhausted, at most one probe HEAD per this many ms for the whole cluster */
  quotaProbeInterval: number;
  /** blobs of a newly fetched image manifest fetched ahead of the client, at once; 0 = off */
  prefetch: number;
}

export interface CorePolicy {
  upstreams: ReadonlyMap<string, { upstream: Upstream; policy: UpstreamPolicy }>;
  /** `push.overlay` patterns (glob `*` within a component, `**` across) matched against request paths */
  overlay: string[];
  /** `push.immutableTags`: `<repository>:<tag>` globs of tags that never move nor are deleted */
  immutableTags?: string[];
  /** `localNamespaces` patterns (the same globs): local from the start, never asked upstream */
  localNamespaces: string[];
  maxManifestBytes: number;
  maxBlobBytes: number;
  fetchTimeout: number;
  resumeAttempts: number;
  /** bounds on one upstream tag list (`limits.maxUpstreamTagPages`, `limits.maxUpstreamTags`) */
  tagLists: { maxPages: number; maxTags: number };
}

/** Compiles `push.overlay` globs (the same matcher as auth rules use). */
export const overlayMatcher = repoMatcher;
