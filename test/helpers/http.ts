import { request as httpRequest } from 'node:http';

export interface HttpResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: Buffer;
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  timeoutMs?: number;
}

/**
 * One plain HTTP exchange with the whole body buffered. No keep-alive agent, so nothing lingers
 * after a test. A body cut short by the server rejects (Node reports 'aborted').
 */
export function request(url: string, init: RequestInit = {}): Promise<HttpResponse> {
  const method = (init.method ?? 'GET').toUpperCase();
  const body = typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
    headers['content-length'] = String(body.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('aborted', () => reject(new Error(`${method} ${url}: response body aborted`)));
      res.once('end', () => {
        if (!res.complete) {
          reject(new Error(`${method} ${url}: response body incomplete`));
          return;
        }
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) {
          if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
        }
        resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks) });
      });
    });
    const timeout = init.timeoutMs ?? 30_000;
    req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeout} ms`)));
    req.once('error', reject);
    req.end(body);
  });
}

export interface Credentials {
  username: string;
  password: string;
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (the only shape registries send). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (m === null) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) params[p[1]!.toLowerCase()] = p[2]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/**
 * Answers registry challenges the way docker does: Basic → credentials, Bearer → token from the realm
 * (anonymous when no credentials). The Authorization header is remembered, so a push costs one token.
 */
export class RegistrySession {
  private authorization: string | undefined;

  constructor(
    private readonly creds?: Credentials,
    /** e.g. `repository:team/app:pull,push`; used instead of the challenge's scope when given. */
    private readonly scope?: string,
  ) {}

  async request(url: string, init: RequestInit = {}): Promise<HttpResponse> {
    const send = (): Promise<HttpResponse> =>
      request(url, {
        ...init,
        headers: { ...(init.headers ?? {}), ...(this.authorization ? { authorization: this.authorization } : {}) },
      });
    const first = await send();
    if (first.status !== 401) return first;
    const ch = parseChallenge(first.headers['www-authenticate']);
    if (ch === undefined) return first;
    const next = await this.answer(ch);
    if (next === undefined || next === this.authorization) return first;
    this.authorization = next;
    return send();
  }

  private async answer(ch: Challenge): Promise<string | undefined> {
    if (ch.scheme === 'basic') return this.creds ? basicHeader(this.creds) : undefined;
    if (ch.scheme !== 'bearer' || ch.params.realm === undefined) return undefined;
    const u = new URL(ch.params.realm);
    if (ch.params.service !== undefined) u.searchParams.set('service', ch.params.service);
    const scope = this.scope ?? ch.params.scope;
    if (scope !== undefined) u.searchParams.set('scope', scope);
    const res = await request(u.toString(), { headers: this.creds ? { authorization: basicHeader(this.creds) } : {} });
    if (res.status !== 200) return undefined;
    const json = JSON.parse(res.body.toString('utf8')) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    return token === undefined ? undefined : `Bearer ${token}`;
  }
}

export const manifestAccept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface FetchOptions {
  auth?: Credentials;
  method?: 'GET' | 'HEAD';
  /** Extra request headers (e.g. `range`, or a narrower `accept`). */
  headers?: Record<string, string>;
}

/** GET (or HEAD) /v2/<repo>/manifests/<ref>, answering auth challenges; any status is returned. */
export function fetchManifest(baseUrl: string, repo: string, ref: string, opts: FetchOptions = {}): Promise<HttpResponse> {
  const s = new RegistrySession(opts.auth, `repository:${repo}:pull`);
  return s.request(`${trimSlash(baseUrl)}/v2/${repo}/manifests/${ref}`, {
    method: opts.method ?? 'GET',
    headers: { accept: manifestAccept, ...(opts.headers ?? {}) },
  });
}

/** GET (or HEAD) /v2/<repo>/blobs/<digest>, answering auth challenges; any status is returned. */
export function fetchBlob(baseUrl: string, repo: string, digest: string, opts: FetchOptions = {}): Promise<HttpResponse> {
  const s = new RegistrySession(opts.auth, `repository:${repo}:pull`);
  return s.request(`${trimSlash(baseUrl)}/v2/${repo}/blobs/${digest}`, {
    method: opts.method ?? 'GET',
    headers: opts.headers ?? {},
  });
}

export function trimSlash(u: string): string {
  return u.endsWith('/') ? u.slice(0, -1) : u;
}
