import type { Context } from 'koa';
import type { Namespaces, RepoRef } from '../../core/types.js';
import { ErrorCode, RegistryError } from '../../oci/index.js';
import type { MayPull } from '../middleware/client-auth.js';
import { query } from '../request.js';
import type { RouteMatch } from '../routes.js';
import type { ExternalTokenVerifier, GrantedAccess } from './external-token.js';
import { bearerChallenge } from './scope.js';

export type Needed = 'pull' | 'push' | 'delete';

export interface ExternalAuthDeps {
  namespaces: Namespaces;
  verifier: ExternalTokenVerifier;
  /** the token service's URL (config only, never built from the request) */
  realm: string;
  service: string;
}

/**
 * /v2 authorization in external token mode (Distribution's `auth.token` with a rootcertbundle): a request
 * is allowed exactly as far as a valid token's `access` claim grants; wharf's own users and rules play no
 * part. Grants name repositories as the token service sees them; a name that means the same repository
 * (`alpine`, `library/alpine`, `docker.io/library/alpine`) is the same grant.
 */
export class ExternalTokenAuth {
  constructor(private readonly d: ExternalAuthDeps) {}

  /** What the web UI's login asks and checks (the same service and the same verifier as /v2). */
  get service(): { realm: string; service: string; verifier: ExternalTokenVerifier } {
    return { realm: this.d.realm, service: this.d.service, verifier: this.d.verifier };
  }

  /** The display name a token service knows a repository by (what /v2's challenges name). */
  scopeName(repo: RepoRef): string {
    return this.d.namespaces.displayName(repo.key);
  }

  async authorize(ctx: Context, m: RouteMatch): Promise<void> {
    const grants = await this.grants(ctx);
    if (m.route === 'base') {
      if (!grants) throw this.unauthorized('authentication required');
      return;
    }
    if (m.route === 'catalog') {
      // Distribution: the whole catalog for a token granting registry:catalog:*, nothing without.
      const ok = grants?.some((g) => g.type === 'registry' && g.name === 'catalog' && g.actions.includes('*'));
      if (!ok) throw this.unauthorized('authentication required', 'registry:catalog:*', grants !== undefined);
      ctx.state.mayPull = (() => true) satisfies MayPull;
      return;
    }
    const repo = this.d.namespaces.resolve(m.name ?? '', query(ctx).get('ns') ?? undefined);
    const needed = needs(m, ctx.method);
    const have = this.rights(grants ?? [], repo);
    ctx.state.mayPull = ((r) => this.rights(grants ?? [], r).has('pull')) satisfies MayPull;
    if (needed.every((a) => have.has(a))) return;
    const name = this.d.namespaces.displayName(repo.key);
    const scope = `repository:${name}:${needed.includes('push') ? 'pull,push' : needed.join(',')}`;
    throw this.unauthorized('authentication required', scope, grants !== undefined, { repository: name, actions: needed });
  }

  /** The token's grants; undefined without a token; 401 for any other credential or an invalid token. */
  private async grants(ctx: Context): Promise<GrantedAccess[] | undefined> {
    const header = ctx.get('authorization');
    if (!header) return undefined;
    const m = /^bearer +(\S+)\s*$/i.exec(header);
    if (!m) throw this.unauthorized('credentials go to the token service; send its token as Bearer');
    const grants = await this.d.verifier.verify(m[1]!);
    if (!grants) throw this.unauthorized('invalid or expired token', undefined, false, undefined, 'invalid_token');
    return grants;
  }

  /** What the grants allow on one repository: entries naming it (by any of its names) with their actions. */
  rights(grants: readonly GrantedAccess[], repo: RepoRef): Set<Needed> {
    const out = new Set<Needed>();
    for (const g of grants) {
      if (g.type !== 'repository' || !this.same(g.name, repo)) continue;
      for (const a of g.actions) {
        if (a === '*') ['pull', 'push', 'delete'].forEach((x) => out.add(x as Needed));
        else if (a === 'pull' || a === 'push' || a === 'delete') out.add(a);
      }
    }
    return out;
  }

  private same(name: string, repo: RepoRef): boolean {
    try {
      return this.d.namespaces.resolve(name).key === repo.key;
    } catch {
      return false; // a name on no configured registry grants nothing here
    }
  }

  private unauthorized(message: string, scope?: string, hadToken = false, detail?: unknown, error?: 'invalid_token'): RegistryError {
    const err = error ?? (hadToken ? 'insufficient_scope' : undefined);
    return new RegistryError(ErrorCode.UNAUTHORIZED, message, {
      headers: { 'WWW-Authenticate': bearerChallenge(this.d.realm, this.d.service, scope, err) },
      ...(detail !== undefined ? { detail } : {}),
    });
  }
}

function needs(m: RouteMatch, method: string): Needed[] {
  if (m.route === 'upload') return ['pull', 'push'];
  if (method === 'DELETE') return ['delete'];
  if (m.route === 'manifest' && method === 'PUT') return ['pull', 'push'];
  return ['pull'];
}
