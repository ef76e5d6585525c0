import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Digest } from '../oci/index.js';
import type { LinkIndex } from '../store/types.js';

/** What the blob store holds, split the way `cache.maxSize` counts it. */
export interface SizeReport {
  /** Content linked (or referenced) only by mirrored links: what `cache.maxSize` bounds. */
  mirroredBytes: number;
  mirroredBlobs: number;
  /** Locally pushed content and everything it references: bounded by the disk only. */
  localBytes: number;
  localBlobs: number;
  /** Committed blobs nothing links or references (gc removes them; pushes in progress look like this briefly). */
  unlinkedBytes: number;
  unlinkedBlobs: number;
  /** Every committed blob. */
  blobs: number;
}

export interface EvictionResult {
  evicted: Digest[];
  freedBytes: number;
}

export interface GcReport {
  blobs: Array<{ digest: Digest; size: number }>;
  uploads: Array<{ id: string; repo: string; size: number }>;
  temps: string[];
  /** In a dry run, what would be freed (stray temp files' sizes are not known without removing them). */
  freedBytes: number;
  dryRun: boolean;
}

/** Everything the link index says about one digest, merged over the repositories that link it. */
export interface LinkNode {
  local: boolean;
  manifest: boolean;
  /** repositories linking it with origin upstream */
  upstreamRepos: string[];
  /** for manifests: what it references (the same bytes give the same refs in every repository) */
  refs: Digest[];
  /** the latest linkedAt: when it was last pulled, pushed or mounted anywhere */
  linkedAt: number;
}

export type LinkGraph = Map<Digest, LinkNode>;

/** Yields to the event loop every this many items so a long scan never stalls requests. */
const YIELD_EVERY = 512;

/** One pass over every link. */
export async function scanLinks(meta: Pick<LinkIndex, 'allLinks'>): Promise<LinkGraph> {
  const graph: LinkGraph = new Map();
  let n = 0;
  for await (const { repo, digest, link } of meta.allLinks()) {
    let node = graph.get(digest);
    if (!node) {
      node = { local: false, manifest: false, upstreamRepos: [], refs: [], linkedAt: 0 };
      graph.set(digest, node);
    }
    if (link.origin === 'local') node.local = true;
    else node.upstreamRepos.push(repo);
    if (link.kind === 'manifest') node.manifest = true;
    if (link.refs && link.refs.length > node.refs.length) node.refs = link.refs;
    if (link.linkedAt > node.linkedAt) node.linkedAt = link.linkedAt;
    if (++n % YIELD_EVERY === 0) await nextTurn();
  }
  return graph;
}

/** The roots and everything reachable from them through manifest refs (an index → manifests → blobs). */
export function closure(graph: LinkGraph, roots: Iterable<Digest>): Set<Digest> {
  const seen = new Set<Digest>();
  const todo = [...roots];
  for (let d = todo.pop(); d !== undefined; d = todo.pop()) {
    if (seen.has(d)) continue;
    seen.add(d);
    for (const r of graph.get(d)?.refs ?? []) if (!seen.has(r)) todo.push(r);
  }
  return seen;
}

export async function maybeYield(i: number): Promise<void> {
  if (i > 0 && i % YIELD_EVERY === 0) await nextTurn();
}
