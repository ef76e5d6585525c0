import type { Readable } from 'node:stream';
import type { Digest } from '../oci/index.js';
import type { ByteRange } from '../store/types.js';
import type { RangeRequest } from './types.js';

/** A wharf replica, as its peers reach it. */
export interface PeerRef {
  id: string;
  /** base URL of the replica's internal endpoint */
  url: string;
}

export interface FetchLease {
  /** true once the lease could not be renewed (another replica may have taken over) */
  readonly lost: boolean;
  /** Aborted once the lease is lost. */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

export type FetchClaim = { kind: 'mine'; lease: FetchLease } | { kind: 'peer'; holder: PeerRef };

/**
 * What replicas sharing one metadata store and one blob volume coordinate through (DESIGN: one
 * upstream fetch per blob for the whole cluster, one revalidation per tag per window).
 * Single-node wharf runs without one.
 */
export interface Cluster {
  readonly self: PeerRef;
  /** Becomes the one fetcher of a blob, or learns which replica is. */
  claimFetch(digest: Digest): Promise<FetchClaim>;
  /** Streams an in-flight blob from the replica fetching it; undefined when that replica no longer has it in flight. */
  streamFromPeer(holder: PeerRef, digest: Digest, range: RangeRequest | undefined, signal?: AbortSignal): Promise<{ size: number; range?: ByteRange; stream: Readable } | undefined>;
  /** Resolves once no replica holds the fetch lease (committed, failed, or the holder died). */
  waitForRelease(digest: Digest, signal?: AbortSignal): Promise<void>;
  /**
   * Holds an upload session for one request (renewed while held): undefined when a request on another
   * replica holds it. Bytes of a session are written and published by one request at a time cluster-wide.
   */
  holdUpload(id: string): Promise<FetchLease | undefined>;
  /** true when this replica should revalidate the tag now; false when another replica did within the window. */
  claimRevalidation(repoKey: string, tag: string, windowMs: number): Promise<boolean>;
  /** true for exactly one replica per `name` per window (e.g. one quota probe per upstream per interval). */
  claimWindow(name: string, windowMs: number): Promise<boolean>;
  /** A named fetch lease (a manifest's first fetch): the lease when this replica got it, undefined when another holds it. */
  claimLease(name: string): Promise<FetchLease | undefined>;
  /** Resolves once no replica holds the named lease (released, or its holder died and it expired). */
  waitForLease(name: string, signal?: AbortSignal): Promise<void>;
}
