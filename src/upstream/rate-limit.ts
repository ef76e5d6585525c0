import type { RateLimitReading } from './types.js';
import { headerValue } from './errors.js';

type Headers = Record<string, string | string[] | undefined>;

/** `100;w=21600` → { value: 100, window: 21600 } (Docker Hub's ratelimit-* syntax). */
function parseQuota(v: string | undefined): { value: number; window?: number } | undefined {
  if (v === undefined) return undefined;
  const [head = '', ...params] = v.split(';');
  const value = Number(head.trim());
  if (head.trim() === '' || !Number.isFinite(value) || value < 0) return undefined;
  let window: number | undefined;
  for (const p of params) {
    const m = /^\s*w\s*=\s*(\d+)\s*$/i.exec(p);
    if (m) window = Number(m[1]);
  }
  return window === undefined ? { value } : { value, window };
}

/** The rate-limit headers of one response, or undefined when it carried none. */
export function parseRateLimit(headers: Headers, now: number): RateLimitReading | undefined {
  const limit = parseQuota(headerValue(headers['ratelimit-limit']));
  const remaining = parseQuota(headerValue(headers['ratelimit-remaining']));
  const source = headerValue(headers['docker-ratelimit-source']);
  if (!limit && !remaining) return undefined;
  const reading: RateLimitReading = { observedAt: now };
  if (limit) reading.limit = limit.value;
  if (remaining) reading.remaining = remaining.value;
  const w = remaining?.window ?? limit?.window;
  if (w !== undefined) reading.windowSeconds = w;
  if (source !== undefined) reading.source = source;
  return reading;
}

/**
 * When quota-consuming requests must not be sent: after a 429, exactly until its Retry-After. An exhausted
 * quota (`remaining: 0`) is not held here for the whole window: Docker Hub's window slides, so core's quota
 * gate (core/quota.ts) probes with a HEAD and lifts the hold as soon as quota is back.
 */
export class Throttle {
  #retryUntil: number | undefined;

  on429(retryAfterSeconds: number, now: number): void {
    const until = now + retryAfterSeconds * 1000;
    this.#retryUntil = Math.max(this.#retryUntil ?? 0, until);
  }

  /** ms epoch until which quota-consuming requests are refused locally, or undefined. */
  until(now: number): number | undefined {
    const u = this.#retryUntil ?? 0;
    return u > now ? u : undefined;
  }
}
