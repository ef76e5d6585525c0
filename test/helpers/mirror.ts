/**
 * Shared set-up for the pull-through mirroring suites (test/integration/mirror-*.test.ts): real
 * Distribution upstreams, each behind a counting fault proxy, a wharf process pointed at the proxies,
 * and small listeners (a trap that must never be contacted, a fake CDN) for the egress tests.
 */
import assert from 'node:assert/strict';
import { listenLoopback } from './ports.js';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { startFaultProxy, type FaultProxy, type RequestFilter } from './fault-proxy.js';
import { manifestAccept, request, type HttpResponse, type RequestInit } from './http.js';
import { isIndex, pushImage, sha256, type Credentials, type TestImage, type TestIndex } from './oci-image.js';
import { startBasicRegistry, startTokenRegistry, type RegistryProcess } from './registry.js';
import type { TokenServer } from './token-server.js';
import { errorCodes, startWharf, type StartWharfOptions, type WharfProcess } from './wharf.js';

export const PUSHER: Credentials = { username: 'pusher', password: 'pusher-secret' };
export const MIRROR_USER: Credentials = { username: 'mirror', password: 'mirror-secret' };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One real upstream registry with a counting fault proxy in front; wharf only ever talks to the proxy. */
export interface MirrorUpstream {
  /** wharf's upstream name (first segment of its repository keys) */
  name: string;
  /** the registry host clients use as a path prefix or `ns` value */
  alias: string;
  proxy: FaultProxy;
  registry: RegistryProcess;
  tokens?: TokenServer;
  /** credentials that may push to the registry directly (seeding content, not through the proxy) */
  pushCreds?: Credentials;
  /** Seeds the upstream directly, so the proxy counts only wharf's requests. */
  push(repo: string, tag: string, image: TestImage | TestIndex): Promise<void>;
  /** The upstream's entry in wharf's `upstreams:` list; `extra` overrides or adds keys. */
  config(extra?: Record<string, unknown>): Record<string, unknown>;
  stop(): Promise<void>;
}

export interface UpstreamOptions {
  tagFreshness?: string;
  notFoundTtl?: string;
  /** token lifetime in seconds (token upstreams only) */
  expiresIn?: number;
}

async function withProxy(
  base: Omit<MirrorUpstream, 'proxy' | 'push' | 'config' | 'stop'>,
  entry: (proxy: FaultProxy) => Record<string, unknown>,
  stopInner: () => Promise<void>,
): Promise<MirrorUpstream> {
  let proxy: FaultProxy;
  try {
    proxy = await startFaultProxy(base.registry.url);
  } catch (err) {
    await stopInner();
    throw err;
  }
  return {
    ...base,
    proxy,
    push: (repo, tag, image) => pushImage(base.registry.url, repo, tag, image, base.pushCreds),
    config: (extra = {}) => ({ ...entry(proxy), ...extra }),
    async stop() {
      await proxy.stop();
      await stopInner();
    },
  };
}

/**
 * Docker Hub shaped: token auth (anonymous = pull, credentials = pull+push), and wharf's docker.io
 * profile (library/ for one-segment names, default upstream) selected by the name `docker.io`.
 */
export async function startHubUpstream(opts: UpstreamOptions = {}): Promise<MirrorUpstream> {
  const tr = await startTokenRegistry({ users: { [PUSHER.username]: PUSHER.password }, anonymous: 'pull', expiresIn: opts.expiresIn ?? 300 });
  return withProxy(
    { name: 'docker.io', alias: 'hub.test', registry: tr.registry, tokens: tr.tokens, pushCreds: PUSHER },
    (proxy) => ({
      name: 'docker.io',
      url: proxy.url,
      default: true,
      aliases: ['docker.io', 'index.docker.io', 'hub.test'],
      tagFreshness: opts.tagFreshness ?? '2s',
      notFoundTtl: opts.notFoundTtl ?? '1s',
    }),
    () => tr.stop(),
  );
}

/** ghcr.io shaped: an anonymous token flow whose token endpoint answers with `token` only. */
export async function startGhcrUpstream(opts: UpstreamOptions & { name?: string; alias?: string } = {}): Promise<MirrorUpstream> {
  const tr = await startTokenRegistry({
    users: { [PUSHER.username]: PUSHER.password },
    anonymous: 'pull',
    tokenField: 'token',
    expiresIn: opts.expiresIn ?? 300,
  });
  const name = opts.name ?? 'ghcr';
  const alias = opts.alias ?? 'ghcr.test';
  return withProxy(
    { name, alias, registry: tr.registry, tokens: tr.tokens, pushCreds: PUSHER },
    (proxy) => ({
      name,
      url: proxy.url,
      default: false,
      aliases: [alias],
      tagFreshness: opts.tagFreshness ?? '2s',
      notFoundTtl: opts.notFoundTtl ?? '1s',
    }),
    () => tr.stop(),
  );
}

/** A private registry with htpasswd (Basic) auth; wharf is configured with credentials for it. */
export async function startBasicUpstream(opts: UpstreamOptions = {}): Promise<MirrorUpstream> {
  const registry = await startBasicRegistry({ [MIRROR_USER.username]: MIRROR_USER.password });
  return withProxy(
    { name: 'basic', alias: 'basic.test', registry, pushCreds: MIRROR_USER },
    (proxy) => ({
      name: 'basic',
      url: proxy.url,
      default: false,
      aliases: ['basic.test'],
      credentials: { username: MIRROR_USER.username, password: MIRROR_USER.password },
      tagFreshness: opts.tagFreshness ?? '2s',
      notFoundTtl: opts.notFoundTtl ?? '1s',
    }),
    () => registry.stop(),
  );
}

/** wharf in front of the given upstreams (their entries from `config()`), with test-friendly cache settings. */
export function startMirror(
  upstreams: Array<Record<string, unknown>>,
  extra: Record<string, unknown> = {},
  opts: Omit<StartWharfOptions, 'config'> = {},
): Promise<WharfProcess> {
  return startWharf({
    ...opts,
    config: {
      upstreams,
      cache: { resumeAttempts: 3, fetchTimeout: '30s' },
      log: { level: 'info' },
      ...extra,
    },
  });
}

// ---- requests through wharf ---------------------------------------------------------------------

export interface Via {
  /** `?ns=` value (containerd style) */
  ns?: string;
}

function q(via: Via = {}): string {
  return via.ns === undefined ? '' : `?ns=${encodeURIComponent(via.ns)}`;
}

export function getManifest(w: WharfProcess, repo: string, ref: string, via: Via & { method?: 'GET' | 'HEAD'; headers?: Record<string, string> } = {}): Promise<HttpResponse> {
  return request(`${w.url}/v2/${repo}/manifests/${ref}${q(via)}`, {
    method: via.method ?? 'GET',
    headers: { accept: manifestAccept, ...(via.headers ?? {}) },
  });
}

export function getBlob(w: WharfProcess, repo: string, digest: string, via: Via & Omit<RequestInit, 'body'> = {}): Promise<HttpResponse> {
  const { ns, ...init } = via;
  return request(`${w.url}/v2/${repo}/blobs/${digest}${q({ ns })}`, init);
}

export function getTags(w: WharfProcess, repo: string, via: Via = {}): Promise<HttpResponse> {
  return request(`${w.url}/v2/${repo}/tags/list${q(via)}`);
}

/** `HTTP 404 MANIFEST_UNKNOWN {...}` for assertion messages. */
export function show(res: HttpResponse): string {
  return `HTTP ${res.status} ${JSON.stringify(res.headers)} ${res.body.toString('utf8').slice(0, 400)}`;
}

export function assertError(res: HttpResponse, status: number, code: string, what: string): void {
  assert.equal(res.status, status, `${what}: ${show(res)}`);
  assert.ok(errorCodes(res).includes(code), `${what}: expected ${code}: ${show(res)}`);
}

/**
 * A docker-like pull over HTTP: the manifest by `ref`, for an index every child by digest, then every
 * config and layer; each body is checked against what was pushed upstream (bytes and sha256).
 */
export async function pullAndVerify(w: WharfProcess, repo: string, ref: string, x: TestImage | TestIndex, via: Via = {}): Promise<void> {
  const top = await getManifest(w, repo, ref, via);
  assert.equal(top.status, 200, `manifest ${repo}:${ref}${q(via)}: ${show(top)}`);
  const expected = isIndex(x) ? x.bytes : x.manifest;
  assert.equal(sha256(top.body), sha256(expected), `manifest ${repo}:${ref}${q(via)} bytes`);
  assert.equal(top.headers['docker-content-digest'], sha256(expected));
  const images = isIndex(x) ? x.images : [x];
  for (const img of images) {
    if (isIndex(x)) {
      const child = await getManifest(w, repo, img.manifestDigest, via);
      assert.equal(child.status, 200, `child manifest ${img.manifestDigest}: ${show(child)}`);
      assert.equal(sha256(child.body), img.manifestDigest);
    }
    for (const b of [img.config, ...img.layers]) {
      const res = await getBlob(w, repo, b.digest, via);
      assert.equal(res.status, 200, `blob ${b.digest} of ${repo}${q(via)}: ${show(res)}`);
      assert.equal(sha256(res.body), b.digest, `blob ${b.digest} of ${repo}${q(via)}: sha256 of body`);
    }
  }
}

// ---- counting at the proxy ----------------------------------------------------------------------

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every upstream path of one repository (`/v2/<repo>/...`). */
export function repoPath(repo: string): RegExp {
  return new RegExp(`^/v2/${escape(repo)}/`);
}

export function blobPath(repo: string, digest: string): string {
  return `/v2/${repo}/blobs/${digest}`;
}

/** `METHOD path → status` lines of the recorded requests matching `filter`, for failure messages. */
export function seen(proxy: FaultProxy, filter: RequestFilter = {}): string {
  const lines = proxy.requests
    .filter((r) => (filter.method === undefined || r.method === filter.method.toUpperCase()) && (filter.path === undefined || (typeof filter.path === 'string' ? r.path === filter.path : filter.path.test(r.path))))
    .map((r) => `${r.method} ${r.path} → ${r.status}${r.fault ? ` [${r.fault}]` : ''}${r.headers?.range ? ` range=${r.headers.range}` : ''}`);
  return lines.length === 0 ? '(none)' : lines.join('\n');
}

// ---- egress listeners ---------------------------------------------------------------------------

/** A TCP listener on an unconfigured loopback port: any connection to it is a request wharf must not make. */
export interface Trap {
  port: number;
  host: string;
  /** connections accepted so far */
  readonly connections: number;
  stop(): Promise<void>;
}

export async function startTrap(): Promise<Trap> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createTcpServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.resume();
  });
  const port = await listenLoopback(server);
  return {
    port,
    host: `127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A fake blob CDN (nothing real can be had on loopback): serves given bytes at `/blobs/<digest>` and records request headers. */
export interface FakeCdn {
  url: string;
  host: string;
  requests: Array<{ method: string; path: string; headers: Record<string, string | string[] | undefined> }>;
  serve(digest: string, bytes: Buffer): void;
  stop(): Promise<void>;
}

export async function startFakeCdn(): Promise<FakeCdn> {
  const blobs = new Map<string, Buffer>();
  const requests: FakeCdn['requests'] = [];
  const server = createHttpServer((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ method: req.method ?? 'GET', path, headers: { ...req.headers } });
    const bytes = blobs.get(path.replace(/^\/blobs\//, ''));
    if (bytes === undefined) {
      res.writeHead(404, { 'content-length': '0' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  });
  const port = await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    serve: (digest, bytes) => void blobs.set(digest, bytes),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * GET that reads the first body bytes and then hangs up (a client killed mid-pull). Resolves with
 * what arrived before the hang-up; `afterMs` hangs up even when no byte came by then.
 */
export function getAndHangUp(url: string, opts: { afterBytes?: number; afterMs?: number } = {}): Promise<{ status: number; received: number }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    let received = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ status, received });
    };
    const timer = setTimeout(finish, opts.afterMs ?? 10_000);
    const req = httpRequest(url, { agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (received >= (opts.afterBytes ?? 1)) finish();
      });
      res.once('end', finish);
      res.once('error', () => finish());
    });
    req.once('error', (e) => (done ? undefined : reject(e)));
    req.end();
  });
}
