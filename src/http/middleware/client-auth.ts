import type { Context } from 'koa';
import type { RepoRef, Registry } from '../../core/types.js';
import { ErrorCode, RegistryError } from '../../oci/index.js';
import type { AccessRules, Action } from '../auth/rules.js';
import { bearerChallenge } from '../auth/scope.js';
import type { AccessEntry, TokenSigner } from '../auth/tokens.js';
import type { Users } from '../auth/users.js';
import type { LoginLimiter } from '../auth/login-limiter.js';
import { TOKEN_PATH } from '../auth/token-endpoint.js';
import { publicOrigin } from '../forwarded.js';
import { query, repoOf } from '../request.js';
import type { RouteMatch } from '../routes.js';

/** Who sent a request: rights come from the rules (anonymous, Basic, static token) or from a signed token's claims. */
export type Caller =
  | { kind: 'anonymous' }
  | { kind: 'user'; user: string }
  | { kind: 'token'; user?: string; access: AccessEntry[] };

export interface ClientAuthDeps {
  registry: Pick<Registry, 'namespaces' | 'overlays'>;
  users: Users;
  /** failed password checks per client address */
  limiter: LoginLimiter;
  rules: AccessRules;
  tokens: TokenSigner;
  service: string;
  /** configured token endpoint URL; default `<request origin>/token` */
  realm?: string;
}

/** Set on ctx.state for the handlers that decide per repository (catalog filtering, cross-repo mount). */
export type MayPull = (repo: RepoRef) => boolean;

const ANONYMOUS: Caller = { kind: 'anonymous' };

/**
 * Client authentication and authorization for /v2 (Distribution's token auth): who the caller is,
 * what a route needs, and the 401-with-challenge or 403 answer when it is not granted. Runs after
 * routing and before any handler, so a refused request reads no body and creates nothing.
 */
export class ClientAuth {
  constructor(private readonly d: ClientAuthDeps) {}

  get tokens(): TokenSigner {
    return this.d.tokens;
  }

  /** A password check for a caller at `from`; 429 without checking once that address failed too often. */
  async checkPassword(user: string, password: string, from: string): Promise<boolean> {
    const wait = this.d.limiter.blockedFor(from);
    if (wait > 0) {
      throw new RegistryError(ErrorCode.TOOMANYREQUESTS, 'too many failed logins from this address', {
        headers: { 'Retry-After': String(Math.ceil(wait / 1000)) },
      });
    }
    const ok = await this.d.users.checkPassword(user, password);
    if (!ok) this.d.limiter.failed(from);
    return ok;
  }

  /** The request's caller; wrong credentials or an invalid token are 401 (never silently anonymous). */
  async caller(ctx: Context, allowSigned = true): Promise<Caller> {
    const header = ctx.get('authorization');
    if (!header) return ANONYMOUS;
    const m = /^(\w+) +(\S+)\s*$/.exec(header);
    const scheme = m?.[1]?.toLowerCase();
    if (m && scheme === 'basic') {
      const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      const user = decoded.slice(0, Math.max(0, i));
      if (i > 0 && (await this.checkPassword(user, decoded.slice(i + 1), ctx.ip))) return { kind: 'user', user };
      throw this.unauthorized(ctx, 'invalid username or password');
    }
    if (m && scheme === 'bearer') {
      const user = this.d.users.tokenUser(m[2]!);
      if (user !== undefined) return { kind: 'user', user };
      const claims = allowSigned ? await this.d.tokens.verify(m[2]!) : undefined;
      if (claims) return { kind: 'token', ...claims };
      throw this.unauthorized(ctx, 'invalid or expired token', undefined, 'invalid_token');
    }
    throw this.unauthorized(ctx, 'unsupported authorization scheme');
  }

  /** The user a request's own credentials name (password or static token); a signed token names none. */
  async credentialsUser(ctx: Context): Promise<string | undefined> {
    const caller = await this.caller(ctx, false);
    return caller.kind === 'user' ? caller.user : undefined;
  }

  /** A repository's names as rules see them: the name clients use for it, and its canonical key. */
  names(repo: RepoRef): string[] {
    const display = this.d.registry.namespaces.displayName(repo.key);
    return display === repo.key ? [repo.key] : [display, repo.key];
  }

  /** What the rules grant `user` (undefined: anonymous) on a repository. */
  granted(user: string | undefined, repo: RepoRef): Set<Action> {
    return this.d.rules.allowed(user, this.names(repo));
  }

  /** What this caller may do now: a signed token carries exactly what was granted when it was issued. */
  rights(caller: Caller, repo: RepoRef): Set<Action> {
    if (caller.kind === 'token') {
      return new Set(caller.access.filter((e) => e.name === repo.key).flatMap((e) => e.actions) as Action[]);
    }
    return this.granted(caller.kind === 'user' ? caller.user : undefined, repo);
  }

  /** Checks a matched /v2 route before its handler runs. */
  async authorize(ctx: Context, m: RouteMatch): Promise<void> {
    const caller = await this.caller(ctx);
    // Who, for the access log and webhooks' actor.name: the name a password or token proved, never anything secret.
    if (caller.kind !== 'anonymous') ctx.state.user = caller.user;
    if (m.route === 'base') {
      // Distribution's ping: any valid credentials (or token) pass; none get the challenge that starts `docker login`.
      if (caller.kind === 'anonymous') throw this.unauthorized(ctx, 'authentication required');
      return;
    }
    if (m.route === 'catalog') {
      const user = caller.kind === 'anonymous' ? undefined : caller.user;
      ctx.state.mayPull = ((repo) => this.granted(user, repo).has('pull')) satisfies MayPull;
      return;
    }
    const name = m.name ?? '';
    const repo = repoOf(ctx, this.d.registry, name);
    const needed = this.needs(m, ctx.method, repo);
    const have = this.rights(caller, repo);
    ctx.state.mayPull = ((r) => this.rights(caller, r).has('pull')) satisfies MayPull;
    if (needed.every((a) => have.has(a))) return;
    const scope = `repository:${name}:${needed.includes('push') ? 'pull,push' : needed.join(',')}`;
    const user = caller.kind === 'anonymous' ? undefined : caller.user;
    // A token that lacks a scope its user could get: ask the client for a new token (Docker does, on 401).
    const couldGet = caller.kind === 'token' && needed.every((a) => this.granted(user, repo).has(a));
    if (user === undefined || couldGet) {
      throw this.unauthorized(ctx, 'authentication required', scope, caller.kind === 'token' ? 'insufficient_scope' : undefined, { repository: name, actions: needed });
    }
    throw new RegistryError(ErrorCode.DENIED, 'requested access to the resource is denied', { detail: { repository: name, actions: needed } });
  }

  /**
   * The token endpoint URL for challenges: the configured realm, else this wharf's `/token` at the validated
   * host the client reached it at (never the raw Host header). A request's `ns` travels along so its token
   * names the same repository.
   */
  realm(ctx: Context): string {
    const base = this.d.realm ?? `${publicOrigin(ctx)}${TOKEN_PATH}`;
    const ns = query(ctx).get('ns');
    return ns ? `${base}?ns=${encodeURIComponent(ns)}` : base;
  }

  unauthorized(ctx: Context, message: string, scope?: string, error?: 'insufficient_scope' | 'invalid_token', detail?: unknown): RegistryError {
    return new RegistryError(ErrorCode.UNAUTHORIZED, message, {
      headers: { 'WWW-Authenticate': bearerChallenge(this.realm(ctx), this.d.service, scope, error) },
      ...(detail !== undefined ? { detail } : {}),
    });
  }

  private needs(m: RouteMatch, method: string, repo: RepoRef): Action[] {
    if (m.route === 'upload') return ['push'];
    if (method === 'DELETE') return ['delete'];
    if (m.route === 'manifest' && method === 'PUT') return this.d.registry.overlays(repo) ? ['push', 'overlay'] : ['push'];
    return ['pull'];
  }
}
