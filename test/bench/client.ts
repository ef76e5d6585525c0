import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { manifestAccept } from '../helpers/http.js';

export interface Fetched {
  status: number;
  headers: Record<string, string>;
  /** Body bytes received. */
  bytes: number;
  /** sha256 of the body, `sha256:<hex>`. */
  digest: string;
  /** The first 2 KiB of the body (error bodies, manifests are read from `body` instead). */
  head: string;
  /** The whole body when it is at most 1 MiB (manifests), else undefined. */
  body: Buffer | undefined;
  /** Milliseconds from sending the request to the last body byte. */
  ms: number;
}

const KEEP = 1 << 20;

/**
 * One GET whose body is hashed as it streams, so eight concurrent 64 MiB pulls cost the bench
 * almost no memory (and the bench's own RSS cannot be mistaken for the mirror's).
 */
export function streamGet(url: string, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<Fetched> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'GET', headers, agent: false }, (res) => {
      const hash = createHash('sha256');
      const kept: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        if (bytes < KEEP) kept.push(c);
        bytes += c.length;
      });
      res.once('error', reject);
      res.once('aborted', () => reject(new Error(`GET ${url}: response aborted after ${bytes} bytes`)));
      res.once('end', () => {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
        const all = bytes <= KEEP ? Buffer.concat(kept) : undefined;
        resolve({
          status: res.statusCode ?? 0,
          headers: out,
          bytes,
          digest: `sha256:${hash.digest('hex')}`,
          head: Buffer.concat(kept).subarray(0, 2048).toString('utf8'),
          body: all,
          ms: performance.now() - started,
        });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url}: no progress within ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

export interface PullTarget {
  url: string;
}

export interface PulledImage {
  manifestDigest: string;
  blobs: Array<{ digest: string; size: number }>;
}

export interface PullResult {
  ok: boolean;
  /** Why the pull failed (first problem), when it did. */
  problem?: string;
  manifestStatus: number;
  blobStatuses: number[];
  ms: number;
}

/**
 * What `docker pull` does on the wire, minus the engine: manifest by tag, then every blob, each
 * verified against the digest pushed upstream.
 */
export async function pull(target: PullTarget, repo: string, tag: string, img: PulledImage, timeoutMs = 60_000): Promise<PullResult> {
  const started = performance.now();
  const m = await streamGet(`${target.url}/v2/${repo}/manifests/${tag}`, { accept: manifestAccept }, timeoutMs);
  const result: PullResult = { ok: false, manifestStatus: m.status, blobStatuses: [], ms: 0 };
  const fail = (problem: string): PullResult => ({ ...result, problem, ms: performance.now() - started });
  if (m.status !== 200) return fail(`manifest: HTTP ${m.status} ${m.head.slice(0, 200)}`);
  if (m.digest !== img.manifestDigest) return fail(`manifest digest ${m.digest}, pushed ${img.manifestDigest}`);
  for (const b of img.blobs) {
    const r = await streamGet(`${target.url}/v2/${repo}/blobs/${b.digest}`, {}, timeoutMs);
    result.blobStatuses.push(r.status);
    if (r.status !== 200) return fail(`blob ${b.digest.slice(7, 19)}: HTTP ${r.status} ${r.head.slice(0, 200)}`);
    if (r.digest !== b.digest || r.bytes !== b.size) return fail(`blob ${b.digest.slice(7, 19)}: got ${r.bytes} bytes ${r.digest}`);
  }
  return { ...result, ok: true, ms: performance.now() - started };
}
