import { CliError } from './common.js';

export interface Credentials {
  username: string;
  password: string;
}

/** The admin API (and /metrics) of a running wharf, with readable errors for every way a call can fail. */
export class AdminClient {
  readonly base: string;

  constructor(
    url: string,
    private readonly creds?: Credentials,
    /** /metrics elsewhere (metrics.listen) or behind its own credentials; default `<url>/metrics` with creds */
    private readonly metricsAt?: { url: string; credentials?: Credentials },
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

  /** /metrics as text, or undefined when wharf serves it elsewhere or behind other credentials. */
  async metrics(): Promise<string | undefined> {
    const m = this.metricsAt;
    const res = await (m ? fetch(m.url, { headers: m.credentials ? { authorization: basic(m.credentials) } : {} }) : this.fetch('/metrics')).catch(() => undefined);
    if (!res || res.status !== 200) {
      await res?.body?.cancel().catch(() => undefined);
      return undefined;
    }
    return res.text();
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
