import type { Descriptor, Digest, Platform } from '../oci/index.js';

/** What the web UI and its JSON API read: wharf's own metadata, never one upstream request per tag. */

export interface TagSummary {
  tag: string;
  digest: Digest;
  mediaType: string;
  origin: 'local' | 'upstream';
  /** compressed size: the manifest and everything it references that is linked to the repository */
  size: number;
  /** when pushed, or when the upstream last confirmed it (ms since epoch) */
  updatedAt: number;
  /** last time its manifest was served (ms since epoch), when known */
  lastPulled?: number;
  /** an index's platforms (`os/arch[/variant]`); filled on the repository page only */
  platforms?: string[];
}

export interface RepositorySummary {
  /** the name clients pull by */
  name: string;
  /** canonical key */
  key: string;
  /** configured upstream it mirrors, when it can be mirrored */
  upstream?: string;
  local: boolean;
  mirrored: boolean;
  tags: TagSummary[];
  /** sum of the sizes of everything linked to the repository */
  bytes: number;
  /** manifests and blobs its tags reach (what `bytes` adds up) */
  manifests: number;
  blobs: number;
  updatedAt?: number;
  lastPulled?: number;
}

export interface ImageBlob {
  digest: Digest;
  mediaType: string;
  size: number;
}

export interface ImageConfigSummary {
  created?: string;
  os?: string;
  architecture?: string;
  variant?: string;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
  history?: Array<{ created?: string; createdBy?: string; emptyLayer?: boolean; comment?: string }>;
}

export interface ImageDetail {
  repository: string;
  digest: Digest;
  mediaType: string;
  size: number;
  origin: 'local' | 'upstream';
  tags: string[];
  /** an index: its children, with whether each is held here */
  manifests?: Array<ImageBlob & { platform?: Platform; cached: boolean }>;
  /** an image manifest */
  config?: ImageBlob & { content?: ImageConfigSummary };
  layers?: ImageBlob[];
  annotations?: Record<string, string>;
  referrers: Array<{ digest: Digest; mediaType: string; artifactType?: string; size: number }>;
  subject?: Descriptor;
}

export interface Browser {
  /** Every repository with its tags (a snapshot a few seconds old at most). */
  repositories(): Promise<RepositorySummary[]>;
  /** One repository by canonical key, with the platforms of its indexes. */
  repository(key: string): Promise<RepositorySummary | undefined>;
  /** Where a tag points. */
  tag(key: string, tag: string): Promise<{ digest: Digest; origin: 'local' | 'upstream' } | undefined>;
  /** A manifest linked to the repository; undefined when it is not held here. */
  image(key: string, digest: Digest): Promise<ImageDetail | undefined>;
  /** The next read builds a new snapshot and waits for it (after a delete or purge). */
  invalidate(): void;
}
