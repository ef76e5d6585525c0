import type { Context } from 'koa';
import type { RepoRef } from '../../core/types.js';
import { ErrorCode, RegistryError } from '../../oci/index.js';
import type { Action } from '../auth/rules.js';
import type { Caller, ClientAuth } from '../middleware/client-auth.js';
import type { ExternalViewers } from './external-viewer.js';
import { CSRF_HEADER, SESSION_COOKIE, cookieValue, type Session, type Sessions } from './session.js';

/** Who is looking: a session cookie, or (CLI, scripts) the same Authorization header /v2 takes. */
export interface Viewer {
  caller: Caller;
  /** set when the caller came by session cookie */
  session?: Session;
  /** what the caller may do to a repository: the /v2 rule, or everything when the registry is open */
  rights(repo: RepoRef): Set<Action>;
  /**
   * External token mode: asks the token service for these repositories' rights (batched, cached) so that
   * rights() can answer; until then rights() grants nothing. Absent where rights need no asking.
   */
  load?(repos: readonly RepoRef[]): Promise<void>;
}

const ALL: readonly Action[] = ['pull', 'push', 'delete', 'overlay'];

export interface ViewerDeps {
  auth?: ClientAuth;
  sessions?: Sessions;
  /** external token mode: the token service decides (auth is then absent) */
  external?: Pick<ExternalViewers, 'viewer'>;
}

export async function viewerOf(ctx: Context, d: ViewerDeps): Promise<Viewer> {
  if (d.external) return d.external.viewer(ctx);
  const auth = d.auth;
  if (!auth) return { caller: { kind: 'anonymous' }, rights: () => new Set(ALL) };
  if (ctx.get('authorization')) {
    const caller = await auth.caller(ctx).catch((e: unknown) => {
      // The browser must never see a Basic challenge from the API (it would pop up a password dialog).
      throw e instanceof RegistryError && e.code === ErrorCode.UNAUTHORIZED ? loginRequired(e.message) : e;
    });
    return { caller, rights: (repo) => auth.rights(caller, repo) };
  }
  // A session sealed for an external token service names that service's user, not one of ours (a mode switch).
  const read = await d.sessions?.readLive(cookieValue(ctx.get('cookie'), SESSION_COOKIE));
  const session = read?.sealed === undefined ? read : undefined;
  const caller: Caller = session ? { kind: 'user', user: session.user } : { kind: 'anonymous' };
  return { caller, ...(session ? { session } : {}), rights: (repo) => auth.rights(caller, repo) };
}

/**
 * Cross-site request guard for state-changing calls. A session must send its own token in X-Wharf-CSRF; any
 * other caller must still send the header (a custom header cannot come from a cross-site form or a simple
 * request, and the API never answers a CORS preflight). The cookie is SameSite=Strict besides.
 */
export function checkCsrf(ctx: Context, viewer: Viewer, sessions: Sessions | undefined): void {
  const given = ctx.get(CSRF_HEADER);
  const ok = viewer.session && sessions ? sessions.csrfMatches(viewer.session, given) : given !== '';
  if (!ok) throw new RegistryError(ErrorCode.DENIED, 'missing or wrong X-Wharf-CSRF header', { detail: { header: 'X-Wharf-CSRF' } });
}

export function userOf(viewer: Viewer): string | undefined {
  return viewer.caller.kind === 'anonymous' ? undefined : viewer.caller.user;
}

/** 401 without a Basic challenge (so a browser shows the UI's login form, not its own dialog). */
export function loginRequired(message = 'log in first'): RegistryError {
  return new RegistryError(ErrorCode.UNAUTHORIZED, message, { headers: { 'WWW-Authenticate': 'WharfSession realm="wharf"' } });
}
