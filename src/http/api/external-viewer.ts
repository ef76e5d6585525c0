import { createHash, randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type { RepoRef } from '../../core/types.js';
import { ErrorCode, RegistryError } from '../../oci/index.js';
import type { ExternalTokenAuth, Needed } from '../auth/external-auth.js';
import type { LoginLimiter } from '../auth/login-limiter.js';
import type { Credentials, TokenServiceClient } from '../auth/token-service.js';
import type { Caller } from '../middleware/client-auth.js';
import { SESSION_COOKIE, cookieValue, type Session, type Sessions } from './session.js';
import { loginRequired, type Viewer } from './viewer.js';

export interface ExternalViewerDeps {
  /** /v2's external token auth: how a grant names a repository, and what it allows */
  auth: Pick<ExternalTokenAuth, 'rights' | 'scopeName' | 'service'>;
  tokens: Pick<TokenServiceClient, 'token'>;
  sessions: Sessions;
  /** failed logins per client address (the token service is not made a password oracle) */
  limiter: Pick<LoginLimiter, 'blockedFor' | 'failed'>;
  now: () => number;
}

/** Rights the token service granted are reused for at most this long (and never past the token's `exp`). */
export const RIGHTS_TTL_MS = 60_000;
/** scope items per token request, and the query length they may take (URLs past ~8 KB are refused by many servers) */
const MAX_SCOPES = 100;
const MAX_QUERY_CHARS = 6_000;
const PARALLEL_REQUESTS = 4;
/** viewers whose rights are cached at once (sessions, Basic callers, anonymous): the oldest go first */
const MAX_VIEWERS = 128;
const ACTIONS = 'pull,push,delete';
/** a viewer's expired entries are dropped once it holds this many */
const PRUNE_AT = 1_000;

interface Cached {
  until: number;
  rights?: Set<Needed>;
  pending?: Promise<void>;
}

/**
 * The API's viewer in external token mode: the token service decides, as it does for /v2. A login is a
 * token request with the user's credentials (the session's user is the token's subject); a viewer's rights
 * on repositories are the `access` claims of a token the service grants that viewer for
 * `repository:<name>:pull,push,delete`, asked in batches (several `scope` parameters per request) and
 * reused per viewer for at most RIGHTS_TTL_MS and the token's lifetime. A session keeps the credentials
 * sealed in its signed cookie, because the service asks for them again once its short-lived tokens expire.
 */
export class ExternalViewers {
  /** per viewer, least recently used first: its rights by repository key ('' : a Basic caller's checked login) */
  private readonly cache = new Map<string, { used: number; entries: Map<string, Cached> }>();
  /** keys the Basic callers' cache entries without keeping their passwords (per process) */
  private readonly salt = randomBytes(32);

  constructor(private readonly d: ExternalViewerDeps) {}

  /** Checks a login with the token service; the user name the session carries (the token's subject). */
  async login(creds: Credentials, from: string): Promise<string> {
    this.throttle(from);
    const answer = await this.d.tokens.token(creds, []);
    if (answer.kind === 'refused') {
      this.d.limiter.failed(from);
      throw loginRequired('invalid username or password');
    }
    return answer.token.subject !== '' ? answer.token.subject : creds.username;
  }

  async viewer(ctx: Context): Promise<Viewer> {
    const header = ctx.get('authorization');
    if (header) return this.headerViewer(ctx, header);
    const session = await this.d.sessions.readLive(cookieValue(ctx.get('cookie'), SESSION_COOKIE));
    const creds = session && this.d.sessions.unseal(session);
    // A session without credentials that open (another mode's cookie, another key) is no login here.
    if (!session || !creds) return this.viewerOf({ kind: 'anonymous' }, 'anonymous', undefined);
    return this.viewerOf({ kind: 'user', user: session.user }, `session:${session.sid}`, { creds, onRefused: () => stale() }, session);
  }

  /** The Authorization header /v2 takes (a token from the service), and Basic for scripts such as `wharf ls`. */
  private async headerViewer(ctx: Context, header: string): Promise<Viewer> {
    const bearer = /^bearer +(\S+)\s*$/i.exec(header);
    if (bearer) {
      const token = await this.d.auth.service.verifier.verifyToken(bearer[1]!);
      if (!token) throw loginRequired('invalid or expired token');
      const caller: Caller = { kind: 'token', ...(token.subject !== '' ? { user: token.subject } : {}), access: [] };
      return { caller, rights: (repo) => this.d.auth.rights(token.access, repo) };
    }
    const basic = /^basic +(\S+)\s*$/i.exec(header);
    const decoded = basic ? Buffer.from(basic[1]!, 'base64').toString('utf8') : '';
    const i = decoded.indexOf(':');
    if (i <= 0) throw loginRequired('send Basic credentials or a token from the token service as Bearer');
    const creds = { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
    const key = `basic:${createHash('sha256').update(this.salt).update(`${creds.username}\0${creds.password}`).digest('base64url')}`;
    const refused = (): never => {
      this.d.limiter.failed(ctx.ip);
      throw loginRequired('invalid username or password');
    };
    this.throttle(ctx.ip);
    const v = this.viewerOf({ kind: 'user', user: creds.username }, key, { creds, onRefused: refused });
    // The credentials are checked before anything is answered (a cached check counts for RIGHTS_TTL_MS).
    await this.ensureLogin(key, creds, refused);
    return v;
  }

  private viewerOf(caller: Caller, key: string, who: { creds: Credentials; onRefused: () => never } | undefined, session?: Session): Viewer {
    // What this request loaded answers for the rest of it (fresh when loaded), even if the cache drops the viewer.
    let mine: Map<string, Cached> | undefined;
    return {
      caller,
      ...(session ? { session } : {}),
      rights: (repo) => new Set(mine?.get(repo.key)?.rights ?? []),
      load: async (repos) => {
        mine = this.entries(key);
        await this.load(mine, who, repos);
      },
    };
  }

  private async ensureLogin(key: string, creds: Credentials, onRefused: () => never): Promise<void> {
    const entries = this.entries(key);
    const hit = entries.get('');
    if (hit && hit.until > this.d.now()) return hit.pending;
    const pending = this.d.tokens.token(creds, []).then((a) => {
      if (a.kind === 'refused') onRefused();
      entry.until = Math.min(this.d.now() + RIGHTS_TTL_MS, a.kind === 'granted' ? a.token.expiresAt : 0);
    });
    const entry: Cached = { until: this.d.now() + RIGHTS_TTL_MS, pending };
    entries.set('', entry);
    await pending.catch((e: unknown) => {
      entries.delete('');
      throw e;
    });
  }

  /** Asks the token service for the rights not cached yet, in batches; concurrent loads share requests. */
  private async load(entries: Map<string, Cached>, who: { creds: Credentials; onRefused: () => never } | undefined, repos: readonly RepoRef[]): Promise<void> {
    const waits: Array<Promise<void>> = [];
    const missing = new Map<string, RepoRef>();
    for (const repo of repos) {
      const e = this.fresh(entries, repo);
      if (e?.pending) waits.push(e.pending);
      else if (!e && !missing.has(repo.key)) missing.set(repo.key, repo);
    }
    const batches = batch([...missing.values()], (r) => `repository:${this.d.auth.scopeName(r)}:${ACTIONS}`);
    const gate = limiter(PARALLEL_REQUESTS);
    for (const b of batches) {
      const provisional = this.d.now() + RIGHTS_TTL_MS;
      const pending = gate(() => this.ask(who, b)).then((granted) => {
        for (const repo of b) {
          const e = entries.get(repo.key);
          if (!e) continue;
          e.rights = granted ? this.d.auth.rights(granted.access, repo) : new Set();
          e.until = Math.min(provisional, granted?.expiresAt ?? provisional);
          delete e.pending;
        }
      });
      for (const repo of b) entries.set(repo.key, { until: provisional, pending });
      waits.push(pending.catch((err: unknown) => {
        // An error is not remembered: the next request asks again.
        for (const repo of b) if (entries.get(repo.key)?.pending === pending) entries.delete(repo.key);
        throw err;
      }));
    }
    const failed = (await Promise.allSettled(waits)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** One token request; undefined when an anonymous viewer is refused (no rights); a refused login ends the session. */
  private async ask(who: { creds: Credentials; onRefused: () => never } | undefined, repos: RepoRef[]) {
    const scopes = repos.map((r) => `repository:${this.d.auth.scopeName(r)}:${ACTIONS}`);
    const answer = await this.d.tokens.token(who?.creds, scopes);
    if (answer.kind === 'granted') return answer.token;
    if (who) who.onRefused();
    return undefined;
  }

  private fresh(entries: Map<string, Cached> | undefined, repo: RepoRef): Cached | undefined {
    const e = entries?.get(repo.key);
    return e && (e.pending || e.until > this.d.now()) ? e : undefined;
  }

  /**
   * A viewer's entries, marked used now. Memory stays bounded: viewers unused for longer than their entries
   * can live are dropped, and past MAX_VIEWERS the least recently used go.
   */
  private entries(key: string): Map<string, Cached> {
    const now = this.d.now();
    const m = this.cache.get(key)?.entries ?? new Map<string, Cached>();
    this.cache.delete(key);
    this.cache.set(key, { used: now, entries: m });
    if (m.size > PRUNE_AT) for (const [k, e] of m) if (!e.pending && e.until <= now) m.delete(k);
    for (const [k, v] of this.cache) {
      if (this.cache.size <= MAX_VIEWERS && now - v.used <= RIGHTS_TTL_MS) break;
      this.cache.delete(k);
    }
    return m;
  }

  private throttle(from: string): void {
    const wait = this.d.limiter.blockedFor(from);
    if (wait > 0) {
      throw new RegistryError(ErrorCode.TOOMANYREQUESTS, 'too many failed logins from this address', {
        headers: { 'Retry-After': String(Math.ceil(wait / 1000)) },
      });
    }
  }
}

function stale(): never {
  throw loginRequired('the token service no longer accepts this login: log in again');
}

/** Splits items into token requests: at most MAX_SCOPES scope items and MAX_QUERY_CHARS of query each. */
function batch<T>(items: readonly T[], scopeOf: (t: T) => string): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let chars = 0;
  for (const item of items) {
    const n = encodeURIComponent(scopeOf(item)).length + 7;
    if (cur.length > 0 && (cur.length >= MAX_SCOPES || chars + n > MAX_QUERY_CHARS)) {
      out.push(cur);
      cur = [];
      chars = 0;
    }
    cur.push(item);
    chars += n;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Runs at most `n` of the functions given to it at once (a 10,000-repository list is ~100 token requests). */
function limiter(n: number): <T>(f: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: Array<() => void> = [];
  return async <T>(f: () => Promise<T>): Promise<T> => {
    if (running >= n) await new Promise<void>((r) => queue.push(r));
    running++;
    try {
      return await f();
    } finally {
      running--;
      queue.shift()?.();
    }
  };
}
