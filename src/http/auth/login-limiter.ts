/**
 * Failed password checks per client address, as a token bucket: `burst` failures, refilled one per
 * `refillMs`. bcrypt is slow on purpose, so a flood of wrong passwords would otherwise buy an attacker
 * the event loop every pull goes through; past the bucket an address gets 429 without a bcrypt run.
 */
export interface LoginLimiterOptions {
  burst: number;
  refillMs: number;
  /** addresses remembered at most (the oldest go first) */
  maxAddresses: number;
  now: () => number;
}

export const LOGIN_LIMITS = { burst: 20, refillMs: 1000, maxAddresses: 10_000 } as const;

export class LoginLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly o: LoginLimiterOptions) {}

  /** Milliseconds until `address` may try a password again; 0 when it may now. */
  blockedFor(address: string): number {
    const b = this.refilled(address);
    // (the epsilon keeps float noise in the refill from adding a millisecond)
    return b && b.tokens < 1 ? Math.ceil((1 - b.tokens) * this.o.refillMs - 1e-6) : 0;
  }

  failed(address: string): void {
    const b = this.refilled(address) ?? { tokens: this.o.burst, at: this.o.now() };
    b.tokens -= 1;
    this.buckets.delete(address); // re-inserted last: the Map's order is oldest activity first
    this.buckets.set(address, b);
    for (const oldest of this.buckets.keys()) {
      if (this.buckets.size <= this.o.maxAddresses) break;
      this.buckets.delete(oldest);
    }
  }

  private refilled(address: string): { tokens: number; at: number } | undefined {
    const b = this.buckets.get(address);
    if (!b) return undefined;
    const now = this.o.now();
    b.tokens = Math.min(this.o.burst, b.tokens + (now - b.at) / this.o.refillMs);
    b.at = now;
    if (b.tokens >= this.o.burst) {
      this.buckets.delete(address); // a full bucket is the same as none
      return undefined;
    }
    return b;
  }
}
