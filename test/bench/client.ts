import { execFile } from 'node:child_process';
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
 * One GET whose body is hashed as it streams (content checks; throughput runs use curlGets), so it costs the bench
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

/**
 * A GET that follows one 307 (wharf with `redirect: true` → a presigned URL on the bucket), as Docker and
 * containerd do; `ms` covers both legs.
 */
export async function getFollowing(url: string, timeoutMs = 60_000): Promise<Fetched & { redirected: boolean }> {
  const started = performance.now();
  const first = await streamGet(url, {}, timeoutMs);
  if (first.status !== 307) return { ...first, redirected: false };
  const location = first.headers.location;
  if (location === undefined) throw new Error(`${url}: 307 without a Location`);
  const second = await streamGet(new URL(location, url).href, {}, timeoutMs);
  return { ...second, ms: performance.now() - started, redirected: true };
}

export interface PullResult {
  ok: boolean;
  /** Why the pull failed (first problem), when it did. */
  problem?: string;
  ms: number;
}

interface ManifestJson {
  manifests?: Array<{ digest: string }>;
  config?: { digest: string; size: number };
  layers?: Array<{ digest: string; size: number }>;
}

/**
 * What `docker pull` does on the wire, minus the engine: manifest by tag, the first platform's manifest
 * when that is an index, then config and layers (following a redirect to object storage), each verified against its digest. For small images
 * (warm-pull counts); large pulls go through skopeo.
 */
export async function pull(base: string, repo: string, tag: string, timeoutMs = 60_000): Promise<PullResult> {
  const started = performance.now();
  const fail = (problem: string): PullResult => ({ ok: false, problem, ms: performance.now() - started });
  const getManifest = async (ref: string): Promise<ManifestJson | string> => {
    const m = await streamGet(`${base}/v2/${repo}/manifests/${ref}`, { accept: manifestAccept }, timeoutMs);
    if (m.status !== 200 || m.body === undefined) return `manifest ${ref}: HTTP ${m.status} ${m.head.slice(0, 200)}`;
    const want = m.headers['docker-content-digest'];
    if (want !== undefined && want !== m.digest) return `manifest ${ref}: body ${m.digest}, header ${want}`;
    return JSON.parse(m.body.toString('utf8')) as ManifestJson;
  };
  let m = await getManifest(tag);
  if (typeof m === 'string') return fail(m);
  if (m.manifests !== undefined && m.manifests.length > 0) {
    m = await getManifest(m.manifests[0]!.digest);
    if (typeof m === 'string') return fail(m);
  }
  for (const b of [...(m.config ? [m.config] : []), ...(m.layers ?? [])]) {
    const r = await getFollowing(`${base}/v2/${repo}/blobs/${b.digest}`, timeoutMs);
    if (r.status !== 200) return fail(`blob ${b.digest.slice(7, 19)}: HTTP ${r.status} ${r.head.slice(0, 200)}`);
    if (r.digest !== b.digest || r.bytes !== b.size) return fail(`blob ${b.digest.slice(7, 19)}: got ${r.bytes} bytes ${r.digest}`);
  }
  return { ok: true, ms: performance.now() - started };
}

export interface CurlRun {
  /** From spawning the first curl to the last one's exit. */
  wallMs: number;
  /** Body bytes all clients received. */
  bytes: number;
  statuses: number[];
}

/**
 * `n` concurrent curl processes, each GETting `url` into /dev/null: the client costs next to nothing,
 * so the server is what is measured (content is verified once, separately, with streamGet).
 */
export async function curlGets(url: string, n: number, timeoutMs = 120_000, opts: { follow?: boolean } = {}): Promise<CurlRun> {
  const started = performance.now();
  const one = (): Promise<{ status: number; bytes: number }> =>
    new Promise((resolve, reject) => {
      execFile(
        'curl',
        // follow: `-L`, as a client of a mirror that redirects to object storage (the status is the last one's)
        ['-s', ...(opts.follow ? ['-L'] : []), '-o', '/dev/null', '--max-time', String(timeoutMs / 1000), '-w', '%{http_code} %{size_download}', url],
        { timeout: timeoutMs + 5000 },
        (err, stdout) => {
          // curl's exit code says how it ended (18: the body was cut short, 28: timed out, 56: connection reset)
          if (err) return reject(new Error(`curl ${url}: exit ${String(err.code)} after ${stdout.trim() || 'nothing'}`));
          const [status, bytes] = stdout.trim().split(' ').map(Number);
          resolve({ status: status ?? 0, bytes: bytes ?? 0 });
        },
      );
    });
  const runs = await Promise.all(Array.from({ length: n }, one));
  return { wallMs: performance.now() - started, bytes: runs.reduce((a, r) => a + r.bytes, 0), statuses: runs.map((r) => r.status) };
}
