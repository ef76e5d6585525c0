/**
 * Writes that run after the client was answered (a mirrored manifest is stored while its bytes are already
 * on their way), by repository. Reads that must see them (a listing, the first blob request or push check
 * of a repository) wait for them; shutdown waits for all before closing the stores.
 */
export class PendingWrites {
  private readonly running = new Map<Promise<void>, string>();

  track(repoKey: string, work: Promise<void>): void {
    const p = work.finally(() => this.running.delete(p));
    p.catch(() => {}); // the owner of `work` reports its failure
    this.running.set(p, repoKey);
  }

  has(repoKey: string): boolean {
    for (const k of this.running.values()) if (k === repoKey) return true;
    return false;
  }

  /** Resolves once every write running now (for `repoKey`, or all) has settled, successfully or not. */
  async settled(repoKey?: string): Promise<void> {
    await Promise.allSettled([...this.running].filter(([, k]) => repoKey === undefined || k === repoKey).map(([p]) => p));
  }
}
