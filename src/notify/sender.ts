import { createHmac } from 'node:crypto';
import { Agent, request } from 'undici';
import type { DistributionEvent } from './envelope.js';
import { renderBody } from './envelope.js';

/** Header carrying the HMAC-SHA256 of the raw request body under the endpoint's secret: `sha256=<hex>`. */
export const SIGNATURE_HEADER = 'X-Wharf-Signature';

export interface SenderOptions {
  url: string;
  headers?: Record<string, string[]>;
  timeout: number;
  format: 'distribution' | 'cloudevents';
  /** HMAC key (secret.file's bytes) */
  secret?: Buffer;
  userAgent: string;
}

export type SendResult = { ok: true; status: number } | { ok: false; status: number | 'error'; reason: string };

/**
 * POSTs events to one endpoint over its own connection pool, so a slow endpoint holds only its own
 * sockets. Any 2xx or 3xx is success (as Distribution); redirects are not followed.
 */
export class Sender {
  private readonly agent: Agent;

  constructor(private readonly o: SenderOptions) {
    this.agent = new Agent({ connections: 2, headersTimeout: o.timeout, bodyTimeout: o.timeout, connect: { timeout: o.timeout } });
  }

  /** `signal`: shutdown; an aborted delivery counts as failed and is sent again later. */
  async send(events: DistributionEvent[], signal?: AbortSignal): Promise<SendResult> {
    const { contentType, body } = renderBody(this.o.format, events);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(this.o.headers ?? {})) headers[k.toLowerCase()] = v;
    headers['content-type'] = contentType;
    headers['user-agent'] = this.o.userAgent;
    if (this.o.secret) headers[SIGNATURE_HEADER.toLowerCase()] = `sha256=${createHmac('sha256', this.o.secret).update(body).digest('hex')}`;
    try {
      const res = await request(this.o.url, { method: 'POST', headers, body, dispatcher: this.agent, signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(this.o.timeout)]) : AbortSignal.timeout(this.o.timeout) });
      await res.body.dump().catch(() => undefined);
      if (res.statusCode >= 200 && res.statusCode < 400) return { ok: true, status: res.statusCode };
      return { ok: false, status: res.statusCode, reason: `HTTP ${res.statusCode}` };
    } catch (e) {
      return { ok: false, status: 'error', reason: (e as Error).message };
    }
  }

  close(): Promise<void> {
    return this.agent.close().catch(() => undefined);
  }
}
