/**
 * Writes that run after the client was answered (a mirrored manifest is stored while its bytes are already
 * on their way). Listings wait for them, so a client that pulled and then lists sees what it pulled, and
 * shutdown waits for them before closing the stores.
 */
export class PendingWrites {
  private readonly running = new Set<Promise<void>>();

  track(work: Promise<void>): void {
    const p = work.finally(() => this.running.delete(p));
    p.catch(() => {}); // the owner of `work` reports its failure
    this.running.add(p);
  }

  /** Resolves once every write running now has settled (successfully or not). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  get size(): number {
    return this.running.size;
  }
}
