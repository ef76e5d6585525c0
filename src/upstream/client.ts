import { Transform, type Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import type { UpstreamConfig } from '../config/types.js';
import {
  bareMediaType,
  digestOf,
  ErrorCode,
  isDigest,
  isRegistryError,
  manifestMediaTypes,
  MediaType,
  parseDigest,
  parseReference,
  RegistryError,
  upstreamManifestAccept,
  type Digest,
  type DigestAlgorithm,
} from '../oci/index.js';
import { createAuthorizer, type UpstreamAuthorizer } from './auth/authorizer.js';
import { resolveCredentials } from './auth/credentials.js';
import { headerValue, networkError, retryAfterSeconds, statusError, UpstreamDigestMismatchError, type RequestKind } from './errors.js';
import { createDispatcher, resolveHost, systemLookup, type ConnectObserver, type LookupFn, type ProxyEnv } from './network.js';
import { HealthRecord } from './health.js';
import { parseRateLimit, Throttle } from './rate-limit.js';
import {
  classifyAddress,
  realmNamePolicy,
  redirectAddressPolicy,
  redirectNamePolicy,
  sameOrigin,
  type AddressClass,
  type RedirectContext,
} from './redirect-policy.js';
import { Semaphore } from './semaphore.js';
import type {
  RateLimitReading,
  ReferrerDescriptor,
  TagPage,
  Upstream,
  UpstreamBlob,
  UpstreamHealth,
  UpstreamManifest,
  UpstreamManifestHead,
  UpstreamObserver,
} from './types.js';

export interface UpstreamDeps {
  observer?: UpstreamObserver;
  now?: () => number;
  /** DNS (all addresses of a name); defaults to the system resolver */
  lookup?: LookupFn;
  /** HTTP(S)_PROXY / NO_PROXY values; main.ts passes process.env's, upstream/ never reads the environment */
  proxyEnv?: ProxyEnv;
  /** reads secret and CA files, once, at construction */
  readFile?: (path: string) => Buffer | string;
  /** largest manifest accepted from the upstream (default 4 MiB) */
  maxManifestBytes?: number;
  /** largest blob accepted from the upstream; a longer body is cut (default: unbounded) */
  maxBlobBytes?: number;
  /** told of every outbound connection (host, port) before its socket is opened, and of each one refused */
  onConnect?: ConnectObserver;
}

export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 5;
const MAX_AUX_BODY = 1024 * 1024;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

type Headers = Record<string, string | string[] | undefined>;
type Response = Dispatcher.ResponseData;

export function createUpstream(cfg: UpstreamConfig, deps: UpstreamDeps = {}): UpstreamClient {
  return new UpstreamClient(cfg, deps);
}

/** Pages of an upstream referrers list followed at most (a hostile upstream could page forever). */
const MAX_REFERRER_PAGES = 100;

export class UpstreamClient implements Upstream {
  readonly name: string;
  readonly authorizer: UpstreamAuthorizer;
  readonly #cfg: UpstreamConfig;
  readonly #base: URL;
  readonly #now: () => number;
  readonly #observer: UpstreamObserver | undefined;
  readonly #lookup: LookupFn;
  readonly #dispatcher: Dispatcher;
  readonly #fetches: Semaphore;
  readonly #throttle = new Throttle();
  readonly #maxManifest: number;
  readonly #maxBlob: number;
  #reading: RateLimitReading | undefined;
  readonly #health: HealthRecord;
  #upstreamClasses: Promise<Set<AddressClass>> | undefined;

  constructor(cfg: UpstreamConfig, deps: UpstreamDeps) {
    this.name = cfg.name;
    this.#cfg = cfg;
    this.#base = new URL(cfg.url);
    this.#now = deps.now ?? Date.now;
    this.#observer = deps.observer;
    this.#health = new HealthRecord(this.#now);
    this.#lookup = deps.lookup ?? systemLookup;
    this.#maxManifest = deps.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
    this.#maxBlob = deps.maxBlobBytes ?? Number.MAX_SAFE_INTEGER;
    this.#fetches = new Semaphore(cfg.maxConcurrentFetches);
    const readFile = deps.readFile;
    this.#dispatcher = createDispatcher(cfg, {
      lookup: this.#lookup,
      ...(deps.proxyEnv ? { proxyEnv: deps.proxyEnv } : {}),
      ...(readFile ? { readFile } : {}),
      guard: (host, addrs) => this.#connectGuard(host, addrs),
      ...(deps.onConnect ? { observe: deps.onConnect } : {}),
    });
    const creds = resolveCredentials(cfg.name, cfg.credentials, readFile ? (p) => readFile(p).toString() : undefined);
    this.authorizer = createAuthorizer({
      upstream: cfg.name,
      baseUrl: cfg.url,
      ...(creds ? { credentials: creds } : {}),
      now: this.#now,
      timeout: cfg.timeouts.connect + cfg.timeouts.headers,
      checkRealm: (realm) => this.#checkRealm(realm),
      transport: async ({ url, headers, signal }) => {
        const res = await this.#send('auth', 'GET', new URL(url), headers, signal);
        const body = await readCapped(res.body, MAX_AUX_BODY, cfg.timeouts.body).catch(() => Buffer.alloc(0));
        return { status: res.statusCode, headers: res.headers, body };
      },
    });
  }

  /** The latest rate-limit headers seen, if the upstream sends them. */
  rateLimit(): RateLimitReading | undefined {
    return this.#reading;
  }

  health(): UpstreamHealth {
    return this.#health.read();
  }

  /** ms epoch until which manifest GETs are refused locally (after a 429, until its Retry-After), or undefined. */
  throttledUntil(): number | undefined {
    return this.#throttle.until(this.#now());
  }

  async manifest(repo: string, ref: string, signal?: AbortSignal): Promise<UpstreamManifest> {
    const parsed = parseReference(ref);
    this.#refuseIfThrottled();
    const res = await this.#authed('manifest', 'GET', repo, `manifests/${ref}`, { accept: upstreamManifestAccept }, signal);
    if (res.statusCode !== 200) throw await this.#fail('manifest', res);
    const tooLarge = (): RegistryError =>
      new RegistryError(ErrorCode.MANIFEST_INVALID, `upstream ${this.name} sent a manifest larger than ${this.#maxManifest} bytes`, {
        status: 502,
        detail: { upstream: this.name },
      });
    // refused on the announced length alone: no point reading what will be thrown away
    if ((contentLength(res.headers) ?? 0) > this.#maxManifest) {
      discard(res.body);
      throw tooLarge();
    }
    let bytes: Buffer;
    try {
      bytes = await readCapped(res.body, this.#maxManifest, this.#cfg.timeouts.body);
    } catch (e) {
      if (e instanceof TooLarge) throw tooLarge();
      if (e instanceof TooSlow) throw this.#tooSlow('manifest');
      throw networkError(this.name, 'manifest', e);
    }
    const alg: DigestAlgorithm = parsed.kind === 'digest' ? (parsed.digest.slice(0, parsed.digest.indexOf(':')) as DigestAlgorithm) : 'sha256';
    const digest = digestOf(bytes, alg);
    if (parsed.kind === 'digest' && digest !== parsed.digest) {
      throw new UpstreamDigestMismatchError(this.name, parsed.digest, digest);
    }
    return { digest, mediaType: manifestType(res.headers, bytes), bytes };
  }

  async headManifest(repo: string, ref: string, signal?: AbortSignal): Promise<UpstreamManifestHead> {
    parseReference(ref);
    const res = await this.#authed('manifest', 'HEAD', repo, `manifests/${ref}`, { accept: upstreamManifestAccept }, signal);
    if (res.statusCode !== 200) throw await this.#fail('manifest', res);
    dump(res);
    const head: UpstreamManifestHead = { mediaType: bareMediaType(headerValue(res.headers['content-type'])) };
    const dcd = headerValue(res.headers['docker-content-digest'])?.trim();
    // a malformed digest header is treated as absent: the caller then GETs and hashes the bytes itself
    if (dcd !== undefined && isDigest(dcd)) head.digest = parseDigest(dcd);
    const size = contentLength(res.headers);
    if (size !== undefined) head.size = size;
    return head;
  }

  async blob(repo: string, digest: Digest, signal?: AbortSignal, start?: number): Promise<UpstreamBlob> {
    parseDigest(digest);
    const release = await this.#fetches.acquire(signal);
    try {
      const from = start !== undefined && start > 0 ? start : 0;
      const res = await this.#followed('GET', repo, `blobs/${digest}`, from > 0 ? { range: `bytes=${from}-` } : {}, signal);
      let offset = 0;
      let size: number | undefined;
      if (res.statusCode === 200) {
        // a 200 to a Range request is the whole blob: offset 0 tells the caller to skip what it has
        size = contentLength(res.headers);
      } else if (res.statusCode === 206 && from > 0) {
        const cr = parseContentRange(headerValue(res.headers['content-range']));
        if (!cr || cr.start > from) {
          dump(res);
          throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name} answered a range request with an unusable Content-Range`, {
            detail: { upstream: this.name },
          });
        }
        offset = cr.start;
        if (cr.total !== undefined) size = cr.total;
      } else {
        throw await this.#fail('blob', res);
      }
      if (size !== undefined && size > this.#maxBlob) {
        discard(res.body);
        throw this.#blobTooLarge();
      }
      const body = this.#countBytes(res.body, offset, release);
      return size === undefined ? { offset, body } : { offset, size, body };
    } catch (e) {
      release();
      throw e;
    }
  }

  async headBlob(repo: string, digest: Digest, signal?: AbortSignal): Promise<{ size?: number }> {
    parseDigest(digest);
    const res = await this.#followed('HEAD', repo, `blobs/${digest}`, {}, signal);
    if (res.statusCode !== 200) throw await this.#fail('blob', res);
    dump(res);
    const size = contentLength(res.headers);
    return size === undefined ? {} : { size };
  }

  /**
   * The repository's tag list, one page per step, following `Link: <…>; rel="next"` on the upstream's own
   * origin. Each page is read whole (at most `limits.maxManifestBytes`) before it is handed on; the caller
   * bounds how many it takes, and stopping early leaves no request open.
   */
  async *tagPages(repo: string, signal?: AbortSignal): AsyncIterable<TagPage> {
    let url: URL | undefined = this.#repoUrl(repo, 'tags/list');
    while (url !== undefined) {
      const res: Response = await this.#authedUrl('tags', 'GET', repo, url, {}, signal);
      if (res.statusCode !== 200) throw await this.#fail('tags', res);
      let body: unknown;
      try {
        body = JSON.parse((await readCapped(res.body, this.#maxManifest, this.#cfg.timeouts.body)).toString('utf8'));
      } catch (e) {
        throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name} sent an unreadable tag list`, { cause: e });
      }
      const tags = (body as { tags?: unknown } | null)?.tags;
      const next = nextLink(headerValue(res.headers['link']), url);
      // pagination stays on the upstream's origin: a Link elsewhere would carry our token there
      url = next && sameOrigin(next, this.#base) ? next : undefined;
      yield { tags: Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [], more: url !== undefined };
    }
  }

  async referrers(repo: string, digest: Digest, signal?: AbortSignal): Promise<ReferrerDescriptor[] | undefined> {
    parseDigest(digest);
    const out: ReferrerDescriptor[] = [];
    let url: URL | undefined = this.#repoUrl(repo, `referrers/${digest}`);
    for (let page = 0; page < MAX_REFERRER_PAGES && url !== undefined; page++) {
      const res: Response = await this.#authedUrl('referrers', 'GET', repo, url, { accept: MediaType.ociIndex }, signal);
      if (res.statusCode === 404 && page === 0) {
        dump(res);
        return undefined; // an OCI 1.1 registry never answers 404 here: this one has no referrers API
      }
      if (res.statusCode !== 200) throw await this.#fail('referrers', res);
      let body: unknown;
      try {
        body = JSON.parse((await readCapped(res.body, this.#maxManifest, this.#cfg.timeouts.body)).toString('utf8'));
      } catch (e) {
        throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name} sent an unreadable referrers index`, { cause: e });
      }
      out.push(...referrerDescriptors(body));
      const next = nextLink(headerValue(res.headers['link']), url);
      url = next && sameOrigin(next, this.#base) ? next : undefined;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  // ---- requests -------------------------------------------------------------------------------

  #repoUrl(repo: string, rest: string): URL {
    const prefix = this.#base.pathname.replace(/\/+$/, '');
    return new URL(`${prefix}/v2/${repo}/${rest}`, this.#base);
  }

  #authed(kind: RequestKind, method: 'GET' | 'HEAD', repo: string, rest: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    return this.#authedUrl(kind, method, repo, this.#repoUrl(repo, rest), headers, signal);
  }

  /** A request to the upstream with its Authorization; a 401 drops the credential and retries once. */
  async #authedUrl(kind: RequestKind, method: 'GET' | 'HEAD', repo: string, url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    const scope = `repository:${repo}:pull`;
    for (let attempt = 0; ; attempt++) {
      const auth = await this.#authHeader(scope, signal);
      const res = await this.#send(kind, method, url, auth ? { ...headers, authorization: auth } : headers, signal);
      if (res.statusCode !== 401 || attempt > 0) return res;
      dump(res);
      this.authorizer.invalidate(scope, res.headers['www-authenticate']);
    }
  }

  async #authHeader(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    try {
      return await this.authorizer.header(scope, signal);
    } catch (e) {
      if (signal?.aborted) throw e;
      throw networkError(this.name, 'auth', e);
    }
  }

  /** GET/HEAD of a blob, following redirects under the redirect policy. */
  async #followed(method: 'GET' | 'HEAD', repo: string, rest: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    let res = await this.#authed('blob', method, repo, rest, headers, signal);
    let url = this.#repoUrl(repo, rest);
    for (let hops = 0; REDIRECT_STATUSES.has(res.statusCode); hops++) {
      const location = headerValue(res.headers['location']);
      dump(res);
      if (location === undefined) throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name} sent a redirect without Location`);
      if (hops >= MAX_REDIRECTS) throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name}: more than ${MAX_REDIRECTS} redirects`);
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name} sent an invalid redirect`);
      }
      await this.#checkRedirect(next);
      url = next;
      // the upstream's credential is for the upstream: a CDN gets only its own signed URL
      res = sameOrigin(next, this.#base)
        ? await this.#authedUrl('blob', method, repo, next, headers, signal)
        : await this.#send('blob', method, next, headers, signal);
    }
    return res;
  }

  #checkRedirect(target: URL): Promise<void> {
    const ctx: Omit<RedirectContext, 'upstreamClasses'> = {
      upstream: this.#base,
      redirectHosts: this.#cfg.redirectHosts,
      redirectPublicHttps: this.#cfg.redirectPublicHttps,
    };
    return this.#checkTarget(target, redirectNamePolicy(target, ctx), `refused to follow a redirect to ${target.host}`);
  }

  /** A Bearer challenge's realm is checked like a redirect, before the token request connects anywhere. */
  #checkRealm(realm: URL): Promise<void> {
    const byName = realmNamePolicy(realm, { upstream: this.#base, tokenRealmHosts: this.#cfg.tokenRealmHosts });
    return this.#checkTarget(realm, byName, `refused the token realm ${realm.host} (list it in tokenRealmHosts if it is trusted)`);
  }

  /** The name verdict, then (unless it is the upstream's own host) every address the target resolves to. */
  async #checkTarget(target: URL, byName: ReturnType<typeof redirectNamePolicy>, what: string): Promise<void> {
    const refuse = (reason: string): never => {
      throw new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name}: ${what}: ${reason}`, {
        detail: { upstream: this.name, host: target.host },
      });
    };
    if (!byName.ok) return refuse(byName.reason);
    if (byName.by === 'origin') return;
    let addrs: string[];
    try {
      addrs = await resolveHost(target.hostname, this.#lookup);
    } catch (e) {
      return refuse(`cannot resolve (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    const byAddr = redirectAddressPolicy(addrs, byName.by, { upstreamClasses: await this.#ownClasses() });
    if (!byAddr.ok) refuse(byAddr.reason);
  }

  #tooSlow(kind: RequestKind): RegistryError {
    return new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name}: ${kind} body not received within ${this.#cfg.timeouts.body / 1000}s`, {
      detail: { upstream: this.name },
    });
  }

  /** Address classes of the upstream's own host, resolved once. */
  #ownClasses(): Promise<Set<AddressClass>> {
    this.#upstreamClasses ??= resolveHost(this.#base.hostname, this.#lookup).then(
      (addrs) => new Set(addrs.map(classifyAddress)),
      () => {
        this.#upstreamClasses = undefined;
        return new Set<AddressClass>();
      },
    );
    return this.#upstreamClasses;
  }

  /** Connect-time veto for hosts other than the upstream's own (token realms, CDNs). */
  async #connectGuard(host: string, addrs: string[]): Promise<Error | undefined> {
    const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
    if (bare === this.#base.hostname.replace(/^\[|\]$/g, '').toLowerCase()) return undefined;
    const verdict = redirectAddressPolicy(addrs, 'list', { upstreamClasses: await this.#ownClasses() });
    if (verdict.ok) return undefined;
    return Object.assign(new Error(`upstream ${this.name}: connection to ${host} refused: ${verdict.reason}`), { code: 'EWHARFPOLICY' });
  }

  /** One HTTP exchange: metrics, rate-limit headers, network errors mapped. Never follows redirects. */
  async #send(kind: RequestKind, method: 'GET' | 'HEAD', url: URL, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    let res: Response;
    try {
      res = await request(url, {
        dispatcher: this.#dispatcher,
        method,
        headers: { 'user-agent': 'wharf', ...headers },
        // Blob bodies are written to the cache in what has been buffered: 1 MiB (not undici's 64 KiB) makes fewer, larger writes.
        ...(kind === 'blob' ? { highWaterMark: BLOB_BUFFER } : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      this.#observer?.request(this.name, method, 'error', seconds());
      if (signal?.aborted) {
        // A client that hung up says nothing of the upstream; a fetch's own timeout does.
        if (isRegistryError(signal.reason)) this.#health.failed(signal.reason.message);
        throw signal.reason ?? e;
      }
      const err = networkError(this.name, kind, e);
      this.#health.failed(err.message);
      throw err;
    }
    this.#observer?.request(this.name, method, res.statusCode, seconds());
    this.#health.answered(res.statusCode);
    const reading = parseRateLimit(res.headers, this.#now());
    if (reading) {
      this.#reading = reading;
      this.#observer?.rateLimit(this.name, reading);
    }
    if (res.statusCode === 429) {
      const retryAfter = headerValue(res.headers['retry-after']);
      // Without Retry-After, a 429 that reports an exhausted quota is held by core's probing, not by a guess.
      if (retryAfter !== undefined || reading?.remaining === undefined) this.#throttle.on429(retryAfterSeconds(retryAfter, this.#now()), this.#now());
      this.#observer?.throttled(this.name);
    }
    return res;
  }

  /** Turns a non-success answer into its RegistryError, releasing the connection first. */
  async #fail(kind: RequestKind, res: Response): Promise<RegistryError> {
    dump(res);
    return statusError(this.name, kind, res.statusCode, res.headers as Headers, this.#now());
  }

  #refuseIfThrottled(): void {
    const until = this.#throttle.until(this.#now());
    if (until === undefined) return;
    const secs = Math.max(1, Math.ceil((until - this.#now()) / 1000));
    this.#observer?.throttled(this.name);
    throw new RegistryError(ErrorCode.TOOMANYREQUESTS, `upstream ${this.name} is rate limiting us; retry in ${secs}s`, {
      headers: { 'Retry-After': String(secs) },
      detail: { upstream: this.name },
    });
  }

  #blobTooLarge(): RegistryError {
    return new RegistryError(ErrorCode.UNAVAILABLE, `upstream ${this.name} sent a blob larger than limits.maxBlobBytes (${this.#maxBlob} bytes)`, {
      detail: { upstream: this.name },
    });
  }

  /**
   * Passes the body through, counting bytes as they stream, and frees the fetch slot when it ends.
   * A body without a length that runs past maxBlobBytes (from `offset`) is cut: it would never end.
   */
  #countBytes(src: Readable, offset: number, release: () => void): Readable {
    const name = this.name;
    const observer = this.#observer;
    let position = offset;
    const max = this.#maxBlob;
    const tooLarge = (): RegistryError => this.#blobTooLarge();
    // As deep as the body's own buffer: the download batches what queued up behind each chunk into one file write.
    const counter = new Transform({
      highWaterMark: BLOB_BUFFER,
      transform(chunk: Buffer, _enc, cb) {
        position += chunk.length;
        if (position > max) return cb(tooLarge());
        observer?.bytes(name, chunk.length);
        cb(null, chunk);
      },
    });
    // One release point: the counter closes once the caller has read it all, or on any failure. Not when the
    // bytes merely arrived here: with a 1 MiB buffer a small body would free its slot before anyone read it.
    src.once('error', (e) => counter.destroy(e));
    src.once('close', () => {
      if (!src.readableEnded) counter.destroy(new Error('upstream body closed early'));
    });
    counter.once('close', () => {
      if (!src.destroyed && !src.readableEnded) src.destroy();
      release();
    });
    src.pipe(counter);
    return counter;
  }
}

// ---- helpers ----------------------------------------------------------------------------------

/** Bytes of a blob body buffered ahead of the cache write. */
const BLOB_BUFFER = 1 << 20;

class TooLarge extends Error {}
class TooSlow extends Error {}

/**
 * A small body (manifest, tag list, token) read whole: at most `max` bytes, all within `deadlineMs`.
 * The per-chunk body timeout alone would let a drip of one byte a minute hold a fetch for days.
 */
async function readCapped(body: Readable, max: number, deadlineMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    body.destroy(new TooSlow());
  }, deadlineMs);
  try {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      total += b.length;
      if (total > max) {
        body.destroy();
        throw new TooLarge();
      }
      chunks.push(b);
    }
  } catch (e) {
    throw late ? new TooSlow() : e;
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks, total);
}

/** Drops a body we refuse to read at all (its connection is closed); its abort error has nowhere to go. */
function discard(body: Readable): void {
  body.on('error', () => {});
  body.destroy();
}

/** Drops a body we will not read so its connection goes back to the pool. */
function dump(res: Response): void {
  res.body.dump().catch(() => {});
}

function contentLength(h: Headers): number | undefined {
  const v = headerValue(h['content-length']);
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v);
}

/** `bytes 100-999/1000` (total may be `*`). */
export function parseContentRange(v: string | undefined): { start: number; end: number; total?: number } | undefined {
  const m = v ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v) : null;
  if (!m) return undefined;
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start) return undefined;
  return m[3] === '*' ? { start, end } : { start, end, total: Number(m[3]) };
}

/** RFC 8288 `Link: </v2/x/tags/list?last=a&n=100>; rel="next"` resolved against the page's URL. */
export function nextLink(v: string | undefined, base: URL): URL | undefined {
  if (!v) return undefined;
  for (const part of v.split(/,(?=\s*<)/)) {
    const m = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!m) continue;
    const rels = /;\s*rel\s*=\s*"?([^";]+)"?/i.exec(m[2] ?? '');
    if (rels && rels[1]!.split(/\s+/).includes('next')) {
      try {
        return new URL(m[1] as string, base);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The well-formed descriptors of a referrers index (anything else in it is dropped). */
export function referrerDescriptors(index: unknown): ReferrerDescriptor[] {
  const list = (index as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(list)) return [];
  const out: ReferrerDescriptor[] = [];
  for (const m of list as Array<Record<string, unknown>>) {
    if (m === null || typeof m !== 'object') continue;
    const { mediaType, digest, size, artifactType, annotations } = m;
    if (typeof mediaType !== 'string' || typeof digest !== 'string' || !isDigest(digest) || !Number.isSafeInteger(size) || (size as number) < 0) continue;
    const d: ReferrerDescriptor = { mediaType, digest: parseDigest(digest), size: size as number };
    if (typeof artifactType === 'string') d.artifactType = artifactType;
    if (annotations !== null && typeof annotations === 'object' && !Array.isArray(annotations)) {
      const a = Object.entries(annotations as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === 'string');
      if (a.length > 0) d.annotations = Object.fromEntries(a);
    }
    out.push(d);
  }
  return out;
}

/** Content-Type, or the manifest's own mediaType field when the upstream labels it generically. */
function manifestType(h: Headers, bytes: Buffer): string {
  const ct = bareMediaType(headerValue(h['content-type']));
  if (manifestMediaTypes.includes(ct)) return ct;
  try {
    const mt = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }).mediaType;
    if (typeof mt === 'string' && manifestMediaTypes.includes(mt)) return mt;
  } catch {
    // not JSON: keep what the upstream said
  }
  return ct;
}
