import { CliError } from './common.js';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * The admin API of a running wharf, and the JSON API the web UI reads (`/_wharf/api/`, what
 * `wharf ls` and `wharf stats` show), with readable errors for every way a call can fail.
 */
export class AdminClient {
  readonly base: string;

  constructor(
    url: string,
    private readonly creds?: Credentials,
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new CliError(`--url: not a URL: ${url}`, 2);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CliError(`--url: must be http(s), got ${url}`, 2);
    this.base = u.toString().replace(/\/+$/, '');
  }

  get<T>(path: string): Promise<T> {
    return this.json<T>('GET', path);
  }

  post<T>(path: string): Promise<T> {
    return this.json<T>('POST', path);
  }

  delete<T>(path: string): Promise<T> {
    return this.json<T>('DELETE', path);
  }

  /** Any request to the mirror itself (warm pulls through it); same auth header, raw response. */
  async fetch(path: string, init: { method?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(init.headers ?? {}) };
    if (this.creds) headers.authorization = basic(this.creds);
    try {
      return await fetch(`${this.base}${path}`, { method: init.method ?? 'GET', headers, signal: init.signal, redirect: 'follow' });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach wharf at ${this.base} (${cause?.code ?? cause?.message ?? (e as Error).message})`);
    }
  }

  /**
   * GET on the web UI's JSON API. It takes the credentials /v2 takes (a registry user, as `docker login`), not
   * the admin API's; on a registry without `auth` it needs none.
   */
  async api<T>(path: string): Promise<T> {
    const res = await this.fetch(`/_wharf/api${path}`, { headers: { accept: 'application/json' } });
    const text = await res.text();
    if (res.status === 401) {
      throw new CliError(
        this.creds
          ? `${this.base} rejected the credentials (wharf ls and stats take a registry user's, as docker login does)`
          : `${this.base} needs a registry user's credentials (as docker login): --username/--password or WHARF_USERNAME/WHARF_PASSWORD`,
      );
    }
    if (res.status === 404 && !text.startsWith('{')) throw new CliError(`${this.base} has no /_wharf/api (is it wharf, and a version with the web UI's API?)`);
    if (res.status < 200 || res.status > 299) throw new CliError(describeError(res.status, text));
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`${this.base}/_wharf/api${path} answered with something that is not JSON`);
    }
  }

  private async json<T>(method: string, path: string): Promise<T> {
    const res = await this.fetch(`/_wharf/admin${path}`, { method, headers: { accept: 'application/json' } });
    const text = await res.text();
    if (res.status === 401) {
      throw new CliError(
        this.creds
          ? `admin API at ${this.base} rejected the credentials`
          : `admin API at ${this.base} needs credentials: --username/--password or WHARF_ADMIN_USERNAME/WHARF_ADMIN_PASSWORD`,
      );
    }
    if (res.status === 404 && !text.startsWith('{')) throw new CliError(`${this.base} has no admin API (is it wharf, and a version with /_wharf/admin?)`);
    if (res.status < 200 || res.status > 299) throw new CliError(describeError(res.status, text));
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`admin API answered ${method} ${path} with something that is not JSON`);
    }
  }
}

function basic(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

function describeError(status: number, text: string): string {
  try {
    const body = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const e = body.errors?.[0];
    if (e) return `${e.code ?? 'ERROR'}: ${e.message ?? ''} (HTTP ${status})`;
  } catch {
    // not an error body
  }
  return `HTTP ${status}: ${text.slice(0, 200)}`;
}
