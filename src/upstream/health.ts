import type { UpstreamHealth } from './types.js';

/**
 * What this process has seen of one upstream, from the requests it made anyway (no probes): an answer other
 * than a server error is contact; a network failure, a timeout or a 5xx is an error. A 429 is contact too
 * (the rate limit shows beside it).
 */
export class HealthRecord {
  #lastSuccess: number | undefined;
  #lastError: { at: number; message: string } | undefined;
  #failures = 0;

  constructor(private readonly now: () => number) {}

  answered(status: number): void {
    if (status >= 500) return this.failed(`HTTP ${status}`);
    this.#lastSuccess = this.now();
    this.#failures = 0;
  }

  failed(message: string): void {
    this.#lastError = { at: this.now(), message };
    this.#failures++;
  }

  read(): UpstreamHealth {
    const ok = this.#lastSuccess;
    const err = this.#lastError;
    // Failures are reset by an answer: any left means the latest request failed (whatever the clock says).
    const state = this.#failures > 0 ? 'failing' : ok !== undefined ? 'ok' : 'unknown';
    return {
      state,
      failures: this.#failures,
      ...(ok !== undefined ? { lastSuccess: ok } : {}),
      ...(err ? { lastError: { ...err } } : {}),
    };
  }
}
