import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';

/** A `Range: bytes=` request as core passes it (start-end, start-, or -suffix). */
export interface PeerRange {
  start?: number;
  end?: number;
  suffix?: number;
}

export interface PeerBlob {
  /** the whole blob's size */
  size: number;
  /** inclusive bytes served when a range was asked for (206) */
  range?: { start: number; end: number };
  stream: Readable;
}

export interface PeerClientOptions {
  /** the shared secret peers present (x-wharf-peer-token); undefined sends none */
  token: () => string | undefined;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** a holder whose upstream stalls this long breaks the stream (the client retries) */
  bodyTimeoutMs?: number;
}

export const PEER_TOKEN_HEADER = 'x-wharf-peer-token';

/** Path of a replica's in-flight blob endpoint (served by http/internal.ts). */
export function inflightPath(digest: string): string {
  return `/_wharf/inflight/blobs/${digest}`;
}

/**
 * Streams a blob another replica is downloading right now from its internal endpoint, so a cluster
 * fetches each blob from upstream once and never reads a peer's growing temp file over shared storage.
 */
export class PeerClient {
  private readonly agent: Agent;

  constructor(private readonly opts: PeerClientOptions) {
    this.agent = new Agent({
      connect: { timeout: opts.connectTimeoutMs ?? 2000 },
      headersTimeout: opts.headersTimeoutMs ?? 10_000,
      bodyTimeout: opts.bodyTimeoutMs ?? 60_000,
    });
  }

  /** undefined when the peer no longer has the blob in flight (404). Rejects when the peer is unreachable. */
  async inflightBlob(baseUrl: string, digest: string, range: PeerRange | undefined, signal?: AbortSignal): Promise<PeerBlob | undefined> {
    const headers: Record<string, string> = {};
    const token = this.opts.token();
    if (token !== undefined) headers[PEER_TOKEN_HEADER] = token;
    if (range) headers.range = rangeHeader(range);
    const res = await request(new URL(inflightPath(digest), baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`).toString(), {
      dispatcher: this.agent,
      method: 'GET',
      headers,
      signal,
    });
    if (res.statusCode === 404) {
      await res.body.dump();
      return undefined;
    }
    if (res.statusCode === 200 && !range) {
      const size = Number(header(res.headers['content-length']));
      if (Number.isSafeInteger(size)) return { size, stream: res.body };
    }
    if (res.statusCode === 206 && range) {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header(res.headers['content-range']) ?? '');
      if (m) return { size: Number(m[3]), range: { start: Number(m[1]), end: Number(m[2]) }, stream: res.body };
    }
    await res.body.dump();
    throw new Error(`peer ${baseUrl} answered ${res.statusCode} for in-flight blob ${digest}`);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function rangeHeader(r: PeerRange): string {
  if (r.suffix !== undefined) return `bytes=-${r.suffix}`;
  return `bytes=${r.start ?? 0}-${r.end ?? ''}`;
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
