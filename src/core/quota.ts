import { ErrorCode, RegistryError, isRegistryError } from '../oci/index.js';
import type { RateLimitReading, Upstream } from '../upstream/types.js';
import type { CoreDeps } from './deps.js';

/**
 * What the cluster knows of one upstream's pull quota, shared through the metadata store (Redis in
 * cluster mode) so every replica obeys and reports the same figure.
 */
export interface QuotaState {
  /** a 429's Retry-After: nothing quota-consuming before this (ms epoch) */
  retryUntil?: number;
  /** the last reading said `remaining: 0`; held until a probe HEAD (or any answer) shows quota again */
  exhausted?: boolean;
  /** the latest `ratelimit-*` reading any replica saw */
  reading?: RateLimitReading;
}

/** How long a shared reading is kept when the upstream names no window. */
const KEEP_MS = 6 * 3600_000;

/**
 * Decides whether a quota-consuming request (a manifest GET: Docker Hub counts each as a pull) may go to an
 * upstream now. After a 429: not before its Retry-After, exactly. After `remaining: 0`: not until quota is
 * back, learned with a HEAD (free, and it carries `ratelimit-remaining`) sent at most once per
 * `quotaProbeInterval` per upstream for the whole cluster, by whichever request comes first after it.
 */
export class QuotaGate {
  /** single node: when each upstream was last probed */
  private readonly lastProbe = new Map<string, number>();

  constructor(private readonly d: CoreDeps) {}

  async state(upstream: string): Promise<QuotaState> {
    const raw = await this.d.meta.getState(stateKey(upstream)).catch(() => undefined);
    if (raw === undefined) return {};
    try {
      return JSON.parse(raw) as QuotaState;
    } catch {
      return {};
    }
  }

  /** Reports the shared figure (reading and hold) of each upstream to this replica's metrics: run at scrape time. */
  async report(upstreams: Iterable<string>): Promise<void> {
    const now = this.d.now();
    for (const name of upstreams) {
      const s = await this.state(name);
      if (s.reading) this.d.metrics.rateLimit(name, s.reading);
      this.d.metrics.quotaHeld(name, (s.retryUntil ?? 0) > now || s.exhausted === true);
    }
  }

  /** Throws TOOMANYREQUESTS (with the Retry-After a client should honour) while the upstream is held. */
  async admit(upstream: Upstream, probeIntervalMs: number, probe: { path: string; ref: string }): Promise<void> {
    let s = await this.state(upstream.name);
    const now = this.d.now();
    if (s.reading) this.d.metrics.rateLimit(upstream.name, s.reading);
    if (s.retryUntil !== undefined && s.retryUntil > now) throw this.held(upstream.name, s.retryUntil - now);
    if (!s.exhausted) {
      this.d.metrics.quotaHeld(upstream.name, false);
      return;
    }
    if (!(await this.claimProbe(upstream.name, probeIntervalMs))) throw this.held(upstream.name, probeIntervalMs);
    const since = this.d.now();
    let answered = false;
    try {
      await upstream.headManifest(probe.path, probe.ref);
      answered = true;
    } catch (e) {
      // a 404 still carries the quota headers; anything else (429, outage) keeps the hold
      answered = isRegistryError(e) && e.code === ErrorCode.MANIFEST_UNKNOWN;
    }
    s = await this.record(upstream, since, answered);
    this.d.metrics.quotaProbe(upstream.name, !answered ? 'failed' : s.exhausted ? 'exhausted' : 'open');
    if (s.retryUntil !== undefined && s.retryUntil > this.d.now()) throw this.held(upstream.name, s.retryUntil - this.d.now());
    if (s.exhausted) throw this.held(upstream.name, probeIntervalMs);
    this.d.metrics.quotaHeld(upstream.name, false);
  }

  /**
   * Shares what the upstream client learned from requests sent since `since`: its latest reading and any
   * 429 hold. `answered` (a probe got a real answer) with no reading at all lifts an exhausted hold: an
   * upstream that stopped sending the headers no longer tells us to wait.
   */
  async record(upstream: Upstream, since: number, answered = false): Promise<QuotaState> {
    const s = await this.state(upstream.name);
    const now = this.d.now();
    const next: QuotaState = { ...s };
    const r = upstream.rateLimit();
    const fresh = r !== undefined && r.observedAt >= since && (s.reading === undefined || r.observedAt >= s.reading.observedAt);
    if (fresh) {
      next.reading = r;
      if (r.remaining !== undefined) next.exhausted = r.remaining <= 0;
    } else if (answered) {
      next.exhausted = false;
    }
    const retry = upstream.throttledUntil?.();
    if (retry !== undefined && retry > now) next.retryUntil = Math.max(retry, s.retryUntil ?? 0);
    if (next.retryUntil !== undefined && next.retryUntil <= now) delete next.retryUntil;
    if (!next.exhausted) delete next.exhausted;
    if (JSON.stringify(next) !== JSON.stringify(s)) {
      const keep = Math.max(KEEP_MS, (next.reading?.windowSeconds ?? 0) * 1000, (next.retryUntil ?? 0) - now);
      await this.d.meta.setState(stateKey(upstream.name), JSON.stringify(next), keep).catch(() => undefined);
    }
    const held = (next.retryUntil ?? 0) > now || next.exhausted === true;
    this.d.metrics.quotaHeld(upstream.name, held);
    return next;
  }

  private async claimProbe(upstream: string, intervalMs: number): Promise<boolean> {
    if (this.d.cluster) {
      // Redis unreachable: the shared hold cannot be read either; probe from here
      return this.d.cluster.claimWindow(`quota-probe:${upstream}`, intervalMs).catch(() => true);
    }
    const now = this.d.now();
    const last = this.lastProbe.get(upstream);
    if (last !== undefined && now - last < intervalMs) return false;
    this.lastProbe.set(upstream, now);
    return true;
  }

  private held(upstream: string, ms: number): RegistryError {
    const secs = Math.max(1, Math.ceil(ms / 1000));
    this.d.metrics.throttled(upstream);
    this.d.metrics.quotaHeld(upstream, true);
    return new RegistryError(ErrorCode.TOOMANYREQUESTS, `upstream ${upstream} is rate limiting us; held back, retry in ${secs}s`, {
      headers: { 'Retry-After': String(secs) },
      detail: { upstream },
    });
  }
}

function stateKey(upstream: string): string {
  return `quota:${upstream}`;
}
