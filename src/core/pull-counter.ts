import { LRUCache } from 'lru-cache';
import { isIndexType, parseManifest, type Reference } from '../oci/index.js';
import type { PullIndex } from '../store/types.js';
import { PeriodicFlush, type PeriodicFlushOptions } from './periodic-flush.js';
import type { ManifestResult, PullSink, RepoRef } from './types.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Minute buckets make the hour (the current minute and the 59 before it); they outlive it a little. */
const MINUTE_TTL = HOUR + 5 * MINUTE;
/** Hour buckets make the day (the current hour and the 23 before it). */
const HOUR_TTL = 25 * HOUR;
/** Repositories one bucket holds at most (Redis keys and memory stay bounded whatever the traffic). */
export const BUCKET_CAP = 5000;
/** Repositories counted between two flushes at most; the rest of a burst of new names is not counted. */
const PENDING_CAP = 10_000;
/** How long the platform manifests of an index just pulled are remembered (the second step of that pull). */
const CHILD_MEMORY_MS = 10 * MINUTE;
const CHILD_MEMORY_MAX = 20_000;
/** The store's sums are read again after this long (every open dashboard polls). */
const READ_TTL_MS = 3000;

export type PullWindow = 'hour' | 'day';

export interface PullCounterOptions extends PeriodicFlushOptions {
  now: () => number;
}

/**
 * Manifest pulls per repository in time buckets, summed across replicas through the metadata store.
 *
 * One pull is one GET of a manifest, except the platform manifest fetched right after its index: a
 * multi-platform pull (index, then the platform's manifest by digest) counts once, as a single-platform one
 * does. HEADs (a tag's digest checked) are not pulls. The pull path costs a Map update; the store sees one
 * write per bucket per flush interval (as the AccessTracker batches access times).
 */
export class PullCounter implements PullSink {
  /** minute number → repository key → pulls not yet written */
  private pending = new Map<number, Map<string, number>>();
  private pendingNames = 0;
  private readonly children = new LRUCache<string, true>({ max: CHILD_MEMORY_MAX, ttl: CHILD_MEMORY_MS });
  private readonly flusher: PeriodicFlush;
  private read = new Map<string, { at: number; sums: Promise<Map<string, number>> }>();

  constructor(
    private readonly meta: PullIndex,
    private readonly opts: PullCounterOptions,
  ) {
    this.flusher = new PeriodicFlush(() => this.flushNow(), opts);
  }

  pulled(repo: RepoRef, ref: Reference, result: Pick<ManifestResult, 'descriptor' | 'bytes'>): void {
    if (this.flusher.closed) return;
    const { descriptor, bytes } = result;
    if (isIndexType(descriptor.mediaType)) {
      this.rememberChildren(repo.key, descriptor.mediaType, bytes);
    } else if (ref.kind === 'digest' && this.children.has(`${repo.key}@${ref.digest}`)) {
      return; // the second step of a multi-platform pull already counted
    }
    this.count(repo.key);
  }

  /** The busiest repositories of the window, most pulled first (ties by name), `visible` ones only. */
  async top(window: PullWindow, limit: number, visible: (key: string) => boolean): Promise<Array<{ key: string; pulls: number }>> {
    const t = this.opts.now();
    const sums = new Map(await this.stored(window, t));
    const from = window === 'hour' ? minuteOf(t) - 59 : (hourOf(t) - 23) * 60;
    for (const [minute, counts] of this.pending) {
      if (minute < from) continue;
      for (const [key, n] of counts) sums.set(key, (sums.get(key) ?? 0) + n);
    }
    return [...sums]
      .filter(([key, n]) => n > 0 && visible(key))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, limit)
      .map(([key, pulls]) => ({ key, pulls }));
  }

  /** Writes what was counted so far. On failure the batch is merged back and the error rethrown. */
  flush(): Promise<void> {
    return this.flusher.flush();
  }

  /** Stops the timer and writes what is pending. Pulls after close are not counted. */
  close(): Promise<void> {
    return this.flusher.close();
  }

  private count(key: string): void {
    const minute = minuteOf(this.opts.now());
    let m = this.pending.get(minute);
    if (!m) this.pending.set(minute, (m = new Map()));
    const cur = m.get(key);
    if (cur !== undefined) m.set(key, cur + 1);
    else if (this.pendingNames < PENDING_CAP) {
      m.set(key, 1);
      this.pendingNames++;
    }
  }

  private rememberChildren(key: string, mediaType: string, bytes: Buffer): void {
    try {
      for (const child of parseManifest(bytes, mediaType).manifests) this.children.set(`${key}@${child.digest}`, true);
    } catch {
      // stored manifests were parsed when they came in; one that does not parse now has no children to skip
    }
  }

  private stored(window: PullWindow, t: number): Promise<Map<string, number>> {
    const cached = this.read.get(window);
    if (cached && t - cached.at < READ_TTL_MS) return cached.sums;
    const buckets =
      window === 'hour'
        ? Array.from({ length: 60 }, (_, i) => `m:${minuteOf(t) - i}`)
        : Array.from({ length: 24 }, (_, i) => `h:${hourOf(t) - i}`);
    const sums = this.meta.pullCounts(buckets);
    this.read.set(window, { at: t, sums });
    sums.catch(() => this.read.delete(window));
    return sums;
  }

  private async flushNow(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.pendingNames = 0;
    // Counts a long store outage kept pending past the day would only fill buckets no window reads.
    const oldest = minuteOf(this.opts.now()) - 24 * 60;
    const minutes = [...batch].filter(([minute]) => minute >= oldest);
    const hours = new Map<number, Map<string, number>>();
    let failure: { error: unknown } | undefined;
    let i = 0;
    try {
      for (; i < minutes.length; i++) {
        const [minute, counts] = minutes[i]!;
        await this.meta.countPulls(`m:${minute}`, counts, MINUTE_TTL, BUCKET_CAP);
        const hour = Math.floor(minute / 60);
        let h = hours.get(hour);
        if (!h) hours.set(hour, (h = new Map()));
        for (const [key, n] of counts) h.set(key, (h.get(key) ?? 0) + n);
      }
    } catch (error) {
      failure = { error };
      this.mergeBack(minutes.slice(i)); // only what was not written: a retry must not count a minute twice
    }
    // A failure here loses the day's share of minutes already written rather than counting them twice later.
    for (const [hour, counts] of hours) {
      await this.meta.countPulls(`h:${hour}`, counts, HOUR_TTL, BUCKET_CAP).catch((error: unknown) => (failure ??= { error }));
    }
    // Our own writes are in the store now: the next read must see them rather than a sum from before.
    this.read.clear();
    if (failure) throw failure.error;
  }

  private mergeBack(minutes: Array<[number, Map<string, number>]>): void {
    for (const [minute, counts] of minutes) {
      for (const [key, n] of counts) {
        let m = this.pending.get(minute);
        if (!m) this.pending.set(minute, (m = new Map()));
        const cur = m.get(key);
        if (cur === undefined) this.pendingNames++;
        m.set(key, (cur ?? 0) + n);
      }
    }
  }
}

function minuteOf(t: number): number {
  return Math.floor(t / MINUTE);
}

function hourOf(t: number): number {
  return Math.floor(t / HOUR);
}
