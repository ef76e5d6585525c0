import type { Readable } from 'node:stream';
import type { Digest } from '../oci/index.js';

export interface UpstreamManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
}

export interface UpstreamManifestHead {
  /** Docker-Content-Digest; undefined when the upstream did not send one */
  digest?: Digest;
  mediaType: string;
  size?: number;
}

export interface UpstreamBlob {
  /** Full size of the blob when known (Content-Length of a 200, or the total of a Content-Range) */
  size?: number;
  /** Offset the body starts at (non-zero when a Range was honoured) */
  offset: number;
  body: Readable;
}

/**
 * One configured upstream registry. Errors are RegistryErrors already mapped from upstream status:
 * 404 → MANIFEST_UNKNOWN / BLOB_UNKNOWN, 401 → UNAUTHORIZED, 403 → DENIED, 429 → TOOMANYREQUESTS
 * (with Retry-After), network failure / timeout / 5xx → UNAVAILABLE.
 */
export interface Upstream {
  readonly name: string;
  manifest(repo: string, ref: string, signal?: AbortSignal): Promise<UpstreamManifest>;
  headManifest(repo: string, ref: string, signal?: AbortSignal): Promise<UpstreamManifestHead>;
  /** `start` asks for the blob from that offset (Range: bytes=start-) to resume a broken body. */
  blob(repo: string, digest: Digest, signal?: AbortSignal, start?: number): Promise<UpstreamBlob>;
  headBlob(repo: string, digest: Digest, signal?: AbortSignal): Promise<{ size?: number }>;
  /** The tag list page by page (`Link` followed); the caller decides how many pages it takes. */
  tagPages(repo: string, signal?: AbortSignal): AsyncIterable<TagPage>;
  /**
   * The upstream's referrers API (every page): descriptors of manifests whose `subject` is `digest`, or
   * undefined when the upstream does not implement it (it answered 404).
   */
  referrers?(repo: string, digest: Digest, signal?: AbortSignal): Promise<ReferrerDescriptor[] | undefined>;
  /** The latest rate-limit reading, when the upstream sends one. */
  rateLimit(): RateLimitReading | undefined;
  /** What this process has seen of the upstream lately (no probing: the requests it made anyway). */
  health?(): UpstreamHealth;
  /** Until when (ms since epoch) quota-consuming requests are held back after a 429 (its Retry-After). */
  throttledUntil?(): number | undefined;
  close(): Promise<void>;
}

/** One page of an upstream tag list; `more` when the upstream names a next page. */
export interface TagPage {
  tags: string[];
  more: boolean;
}

/** One entry of a referrers index. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface UpstreamHealth {
  /** unknown: no request yet; failing: the latest request met a network error, a timeout or a 5xx */
  state: 'ok' | 'failing' | 'unknown';
  /** ms since epoch of the latest answer that was not a server error */
  lastSuccess?: number;
  lastError?: { at: number; message: string };
  /** failed requests since the latest answer */
  failures: number;
}

export interface RateLimitReading {
  limit?: number;
  remaining?: number;
  /** seconds of the window (`w=` of `N;w=21600`) */
  windowSeconds?: number;
  source?: string;
  observedAt: number;
}

/** What upstream/ reports about each outbound request (observability implements it). */
export interface UpstreamObserver {
  request(upstream: string, method: string, status: number | 'error', seconds: number): void;
  bytes(upstream: string, n: number): void;
  rateLimit(upstream: string, reading: RateLimitReading): void;
  throttled(upstream: string): void;
}

export interface Authorizer {
  /** Value for the Authorization header for `scope` (e.g. `repository:library/alpine:pull`), if any. */
  header(scope: string, signal?: AbortSignal): Promise<string | undefined>;
  /** Drops a cached credential after the upstream rejected it. */
  invalidate(scope: string): void;
}
