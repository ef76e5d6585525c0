import type { Digest } from '../oci/index.js';

/** Digests remembered at most; past it the oldest mark goes (its first read then counts as a hit). */
const MAX_MARKS = 50_000;

/**
 * Content the upstream sent for a pull before that pull's client read it: layers fetched by prefetch,
 * a manifest fetched to answer a HEAD. The client's first read of it is the pull's miss (the upstream
 * did serve those bytes for it), not a hit; later reads are hits. Marks are per process: a replica
 * that did not fetch the content counts what it serves as it finds it.
 */
export class FirstReads {
  private readonly marks = new Set<Digest>();

  mark(digest: Digest): void {
    this.marks.delete(digest);
    this.marks.add(digest);
    if (this.marks.size > MAX_MARKS) this.marks.delete(this.marks.values().next().value!);
  }

  /** true once for a marked digest: this read is the first since the upstream sent it. */
  take(digest: Digest): boolean {
    return this.marks.delete(digest);
  }
}
