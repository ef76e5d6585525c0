import type { Readable } from 'node:stream';
import type { Descriptor, Digest } from '../oci/index.js';

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobStat {
  digest: Digest;
  size: number;
}

/** Content-addressed blob files. Blobs are immutable once committed; a digest names its bytes forever. */
export interface BlobStore {
  stat(digest: Digest): Promise<BlobStat | undefined>;
  /** Opens committed content; undefined when absent. The range must lie within the blob. */
  read(digest: Digest, range?: ByteRange): Promise<Readable | undefined>;
  /** A new temp file; `id` is opaque and safe to persist (upload sessions keep it). */
  create(id?: string, opts?: CreateOptions): Promise<BlobWriter>;
  /** Reopens an uncommitted temp file (an upload resumed by a later request, maybe after a restart). */
  resume(id: string): Promise<BlobWriter | undefined>;
  /** Removes committed content; true when something was removed. */
  delete(digest: Digest): Promise<boolean>;
  /** Every committed digest with its size (gc, eviction, start-up accounting). */
  list(): AsyncIterable<BlobStat>;
  /** When the committed file was last written (ms since epoch); undefined when absent. gc spares young blobs. */
  statTime?(digest: Digest): Promise<number | undefined>;
  /**
   * Where a client may fetch committed content itself (object storage with `redirect`: a presigned URL);
   * undefined when the bytes are to be served by wharf.
   */
  redirectUrl?(digest: Digest): Promise<string | undefined>;
  /**
   * Opens committed content whose size the caller knows (a link records it) in one request, where stat then read
   * would take two: object storage's GetObject answers "absent" itself, a HeadObject first costs a round trip per
   * blob GET. Undefined when absent or not `size` bytes long. The range must lie within `size`.
   */
  readSized?(digest: Digest, size: number, range?: ByteRange): Promise<Readable | undefined>;
  /** Moves committed content out of service but keeps it for inspection (`wharf verify`); true when moved. */
  quarantine?(digest: Digest): Promise<boolean>;
}

export interface CreateOptions {
  /**
   * The file is written once, front to back, and few will read it back soon (a download): its bytes may go
   * to the disk without passing through the page cache, where the store allows it.
   */
  direct?: boolean;
  /**
   * The digest the content is expected to have (a download): a store may stream it to its final place as it is
   * written (object storage: a multipart upload completed only when the digest matches).
   */
  digest?: Digest;
}

/**
 * One temp file being written. Bytes are hashed as they are written; commit verifies the digest and
 * size, fsyncs and renames into place, so a failed or mismatched write never becomes visible.
 */
export interface BlobWriter {
  readonly id: string;
  /** Bytes written so far. */
  readonly size: number;
  /** Appends a stream; resolves with the bytes appended. Rejects (keeping what was written) on error/abort. */
  write(src: AsyncIterable<Uint8Array | readonly Uint8Array[]>, signal?: AbortSignal): Promise<number>;
  /**
   * Reads back bytes already written (tee to clients while a fetch is still running); with `into`, into
   * that buffer (from its start, at most its length), returning the part filled.
   */
  readAt(position: number, length: number, into?: Buffer): Promise<Buffer>;
  /**
   * Checks what was written against the digest (and size when given) without publishing it, so a download
   * can hand its last byte to clients before the slower fsync and rename. Throws DIGEST_INVALID /
   * SIZE_INVALID and discards, as commit would.
   */
  verify(expected: Digest, size?: number): Promise<void>;
  /** Cuts the content back to its first `size` bytes (bytes of an upload request that failed). */
  truncate(size: number): Promise<void>;
  /**
   * Verifies digest (and size when given), publishes. Throws DIGEST_INVALID / SIZE_INVALID and discards.
   * A resumed writer's content is hashed from the file, after moving it where no other writer reaches it.
   */
  commit(expected: Digest, size?: number): Promise<Descriptor>;
  /** Discards the temp file. Idempotent; safe after commit. */
  cancel(): Promise<void>;
  /** Releases the file handle but keeps the temp file for a later resume() (uploads between requests). */
  release(): Promise<void>;
}

export type Origin = 'local' | 'upstream';

/** A tag's pointer to a manifest. */
export interface TagRecord {
  digest: Digest;
  mediaType: string;
  size: number;
  /** When the upstream last confirmed this digest (ms since epoch); pushes set it to the push time. */
  checkedAt: number;
  origin: Origin;
}

/** Content linked into a repository: what may be served under that repository name. */
export interface LinkRecord {
  kind: 'blob' | 'manifest';
  size: number;
  origin: Origin;
  /** manifests only */
  mediaType?: string;
  /** manifests with a `subject`: what the referrers API lists */
  subject?: Digest;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** manifests only: digests this manifest references (blobs and child manifests), for gc and eviction */
  refs?: Digest[];
  linkedAt: number;
}

export interface RepoRecord {
  /** true once anything has been pushed to it: reads never go upstream again (unless overlay) */
  local: boolean;
  /** true once anything has been mirrored into it */
  mirrored: boolean;
}

export interface Page<T> {
  items: T[];
  /** last item of this page when more follow */
  next?: string;
}

export interface TagIndex {
  getTag(repo: string, tag: string): Promise<TagRecord | undefined>;
  putTag(repo: string, tag: string, rec: TagRecord): Promise<void>;
  deleteTag(repo: string, tag: string): Promise<boolean>;
  /** Lexically sorted tag names after `last`, at most `n` (all when n is undefined). */
  listTags(repo: string, n?: number, last?: string): Promise<Page<string>>;
  /** Tags pointing at a digest (manifest delete removes them). */
  tagsOf(repo: string, digest: Digest): Promise<string[]>;
}

export interface LinkIndex {
  getRepo(repo: string): Promise<RepoRecord | undefined>;
  /** Merges flags into the repo record, creating it. */
  markRepo(repo: string, flags: Partial<RepoRecord>): Promise<void>;
  /** Lexically sorted repository keys after `last`. */
  listRepos(n?: number, last?: string): Promise<Page<string>>;
  link(repo: string, digest: Digest, rec: LinkRecord): Promise<void>;
  getLink(repo: string, digest: Digest): Promise<LinkRecord | undefined>;
  unlink(repo: string, digest: Digest): Promise<boolean>;
  /** Manifests in `repo` whose subject is `subject`. */
  referrers(repo: string, subject: Digest): Promise<Array<{ digest: Digest; link: LinkRecord }>>;
  /** Every repository a digest is linked into (gc/eviction/purge). */
  linksOf(digest: Digest): Promise<Array<{ repo: string; link: LinkRecord }>>;
  /** Every link of every repository (gc/eviction scans). */
  allLinks(): AsyncIterable<{ repo: string; digest: Digest; link: LinkRecord }>;
}

export interface UploadRecord {
  id: string;
  repo: string;
  /** BlobWriter id of the temp file */
  writerId: string;
  /** bytes received so far */
  size: number;
  startedAt: number;
  updatedAt: number;
}

export interface UploadIndex {
  createUpload(rec: UploadRecord): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | undefined>;
  /** Compare-and-set of the size: false when `expectedSize` is stale (a concurrent PATCH won). */
  advanceUpload(id: string, expectedSize: number, newSize: number, now: number): Promise<boolean>;
  deleteUpload(id: string): Promise<boolean>;
  listUploads(): AsyncIterable<UploadRecord>;
}

export interface AccessIndex {
  /** Batched access times: digest → last access (ms). Keeps the max of old and new. */
  recordAccess(times: ReadonlyMap<Digest, number>): Promise<void>;
  lastAccess(digest: Digest): Promise<number | undefined>;
  forgetAccess(digest: Digest): Promise<void>;
}

/**
 * Pull counts in time buckets, summed across replicas (the dashboard's top images). A bucket is a caller-chosen
 * id (`m:<minute>`, `h:<hour>`); it holds at most `cap` names and goes `ttlMs` after its first write, so keys
 * and memory stay bounded whatever the traffic. The embedded store keeps them in memory only (a restart
 * forgets them): they are figures to watch, not records.
 */
export interface PullIndex {
  /** Adds `counts` (name → pulls) to a bucket; names beyond the bucket's cap are dropped. */
  countPulls(bucket: string, counts: ReadonlyMap<string, number>, ttlMs: number, cap: number): Promise<void>;
  /** The sums over the buckets named (expired or missing buckets add nothing). */
  pullCounts(buckets: readonly string[]): Promise<Map<string, number>>;
}

/** A small shared key/value for facts every replica should see (rate-limit windows, negative cache). */
export interface SharedState {
  getState(key: string): Promise<string | undefined>;
  setState(key: string, value: string, ttlMs: number): Promise<void>;
  /** Sets `key` only if it holds no value (first writer wins across replicas); resolves with the value it holds then. */
  claimState(key: string, value: string, ttlMs: number): Promise<string>;
}

export type MetadataStore = TagIndex &
  LinkIndex &
  UploadIndex &
  AccessIndex &
  PullIndex &
  SharedState & {
    readonly kind: 'embedded' | 'redis';
    ping(): Promise<void>;
    close(): Promise<void>;
  };
