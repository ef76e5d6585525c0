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

/** Seconds a quota window lasts when the upstream says remaining is 0 but not for how long. */
const DEFAULT_WINDOW = 60;

/**
 * When quota-consuming requests must not be sent: after a 429 until its Retry-After, and after a
 * `remaining: 0` reading until the window reopens (a later reading with quota left lifts that early).
 */
export class Throttle {
  #retryUntil: number | undefined;
  #quotaUntil: number | undefined;

  on429(retryAfterSeconds: number, now: number): void {
    const until = now + retryAfterSeconds * 1000;
    this.#retryUntil = Math.max(this.#retryUntil ?? 0, until);
  }

  onReading(r: RateLimitReading): void {
    if (r.remaining === undefined) return;
    if (r.remaining <= 0) this.#quotaUntil = r.observedAt + (r.windowSeconds ?? DEFAULT_WINDOW) * 1000;
    else this.#quotaUntil = undefined;
  }

  /** ms epoch until which quota-consuming requests are refused locally, or undefined. */
  until(now: number): number | undefined {
    const u = Math.max(this.#retryUntil ?? 0, this.#quotaUntil ?? 0);
    return u > now ? u : undefined;
  }
}
