import type { Readable } from 'node:stream';
import type { Descriptor, Digest, Reference } from '../oci/index.js';
import type { ByteRange, Page } from '../store/types.js';

export type { ByteRange, Page };

/** A repository as wharf knows it: the requested name resolved to one canonical key. */
export interface RepoRef {
  /** canonical key `<upstream>/<path>` (or just the path when wharf has no upstreams) */
  key: string;
  /** configured upstream name, when the repository can be mirrored */
  upstream?: string;
  /** repository path at the upstream (`library/alpine`) */
  path: string;
}

export type Outcome = 'hit' | 'miss' | 'coalesced' | 'stale' | 'local';

export interface ManifestResult {
  descriptor: Descriptor;
  bytes: Buffer;
  outcome: Outcome;
}

/** Where the /v2 manifest GET reports a pull (the dashboard's top images; core/pull-counter.ts). Must not block. */
export interface PullSink {
  pulled(repo: RepoRef, ref: Reference, result: Pick<ManifestResult, 'descriptor' | 'bytes'>): void;
}

export interface BlobBody {
  /** full size of the blob */
  size: number;
  /** set when a range was requested */
  range?: ByteRange;
  stream: Readable;
  source: 'cache' | 'upstream';
  outcome: Outcome;
  /** the client is to fetch the bytes from here (a presigned object-storage URL); `stream` is then empty */
  redirect?: string;
}

export interface UploadStatus {
  id: string;
  /** bytes received so far */
  size: number;
}

/** Manifest work is shared by every client asking at once (single-flight), so no client's signal reaches it. */
export interface ManifestService {
  get(repo: RepoRef, ref: Reference, accept: string[]): Promise<ManifestResult>;
  head(repo: RepoRef, ref: Reference, accept: string[]): Promise<ManifestResult>;
  put(repo: RepoRef, ref: Reference, contentType: string | undefined, bytes: Buffer): Promise<{ descriptor: Descriptor; subject?: Digest }>;
  /** Resolves to the tags removed with it (a digest's tags; the tag itself). */
  delete(repo: RepoRef, ref: Reference): Promise<string[]>;
}

export interface BlobService {
  stat(repo: RepoRef, digest: Digest, signal?: AbortSignal): Promise<{ digest: Digest; size: number; outcome: Outcome }>;
  open(repo: RepoRef, digest: Digest, range: RangeRequest | undefined, signal?: AbortSignal): Promise<BlobBody>;
  delete(repo: RepoRef, digest: Digest): Promise<void>;
}

/** A parsed `Range: bytes=` request; resolved against the blob size by the service. */
export interface RangeRequest {
  start?: number;
  end?: number;
  /** bytes=-N */
  suffix?: number;
}

export interface UploadService {
  start(repo: RepoRef): Promise<UploadStatus>;
  /** POST with ?digest=: the whole blob in one request. */
  monolithic(repo: RepoRef, digest: Digest, body: AsyncIterable<Uint8Array>, length?: number, signal?: AbortSignal): Promise<Descriptor>;
  /** POST with ?mount=&from=: links the blob when `from` has it, else undefined (caller opens a session). */
  mount(repo: RepoRef, from: RepoRef, digest: Digest): Promise<Descriptor | undefined>;
  append(repo: RepoRef, id: string, body: AsyncIterable<Uint8Array>, range: { start: number; end?: number } | undefined, length: number | undefined, signal?: AbortSignal): Promise<UploadStatus>;
  complete(repo: RepoRef, id: string, digest: Digest, tail: AsyncIterable<Uint8Array> | undefined, length: number | undefined, signal?: AbortSignal): Promise<Descriptor>;
  status(repo: RepoRef, id: string): Promise<UploadStatus>;
  cancel(repo: RepoRef, id: string): Promise<void>;
}

export interface TagService {
  list(repo: RepoRef, n: number | undefined, last: string | undefined, signal?: AbortSignal): Promise<Page<string>>;
}

export interface CatalogService {
  list(n: number | undefined, last: string | undefined): Promise<Page<string>>;
}

export interface ReferrersService {
  list(repo: RepoRef, subject: Digest, artifactType: string | undefined): Promise<{ index: Buffer; filtered: boolean }>;
}

export interface Namespaces {
  /** Resolves a validated repository name (and containerd's `ns`) to its canonical repository. */
  resolve(name: string, ns?: string): RepoRef;
  /** The name a client should use for a canonical key (catalog). */
  displayName(key: string): string;
}

export interface Registry {
  namespaces: Namespaces;
  manifests: ManifestService;
  blobs: BlobService;
  uploads: UploadService;
  tags: TagService;
  catalog: CatalogService;
  referrers: ReferrersService;
  /** Whether a push into this repository lands over upstream content (`push.overlay`): auth asks for the `overlay` grant. */
  overlays(repo: RepoRef): boolean;
}

/**
 * Something that happened to a repository, for webhooks (src/notify/). `push`, `pull`, `delete` and `mount`
 * are Distribution's actions; `cache` (content newly arrived from an upstream), `tag-moved` (a tag whose
 * upstream digest changed on revalidation), `evict` (removed by cache eviction) and `purge` (removed by
 * `wharf purge`) are wharf's own.
 */
export type RegistryEventAction = 'push' | 'pull' | 'delete' | 'mount' | 'cache' | 'tag-moved' | 'evict' | 'purge';

export interface RegistryEvent {
  action: RegistryEventAction;
  /** the name clients use for the repository (Namespaces.displayName of its canonical key) */
  repository: string;
  /** the canonical key (`RepoRef.key`); endpoint repository filters match it */
  key: string;
  target: {
    /** what the target is: the envelope's url and media type follow it */
    kind: 'manifest' | 'blob';
    mediaType?: string;
    size?: number;
    digest?: Digest;
    tag?: string;
    fromRepository?: string;
    /** a manifest's config, layers or child manifests */
    references?: Descriptor[];
    /** the upstream the content came from (wharf's own actions) */
    upstream?: string;
  };
  /** the client request that caused it; absent for background work (cache fill, eviction) */
  request?: { id: string; addr: string; host: string; method: string; useragent: string; baseUrl: string };
  /** the authenticated user */
  actor?: string;
}

/**
 * Where events go. emit() resolves once the events are durable (journal fsynced, or in the Redis stream):
 * a request that caused one is answered only after that.
 */
export interface EventSink {
  emit(events: RegistryEvent[]): Promise<void>;
  /** whether any endpoint wants an event with this action (lets a caller skip building it) */
  wants(action: RegistryEventAction): boolean;
}
