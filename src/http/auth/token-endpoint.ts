import type { Context, Next } from 'koa';
import type { Namespaces } from '../../core/types.js';
import { ErrorCode, RegistryError, isValidName } from '../../oci/index.js';
import type { Caller, ClientAuth } from '../middleware/client-auth.js';
import { query, rawPath, readBody } from '../request.js';
import { ACTIONS, type Action } from './rules.js';
import { parseScopes } from './scope.js';
import type { AccessEntry } from './tokens.js';

export const TOKEN_PATH = '/token';
const MAX_FORM_BYTES = 16 * 1024;

/**
 * wharf's token server (Distribution's token protocol): `GET /token?service=&scope=…` with optional Basic
 * credentials, or the OAuth2 password grant (`POST` form). The token grants, per requested repository,
 * the requested actions the caller is allowed; `push` brings `overlay` along when granted, since clients
 * only know pull and push. Wrong credentials are 401; anonymous callers get what anonymous may do.
 */
export function tokenEndpoint(auth: ClientAuth, namespaces: Namespaces) {
  return async function token(ctx: Context, next: Next): Promise<void> {
    if (rawPath(ctx) !== TOKEN_PATH) return next();
    ctx.state.route = 'token';
    let caller: Caller;
    let scopes: string[];
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      // A signed token is not a credential here: exchanging one for another would let it live forever.
      caller = await auth.caller(ctx, false);
      scopes = query(ctx).getAll('scope');
    } else if (ctx.method === 'POST') {
      const form = new URLSearchParams((await readForm(ctx)).toString('utf8'));
      if (form.get('grant_type') !== 'password') {
        ctx.status = 400;
        ctx.body = { error: 'unsupported_grant_type' };
        return;
      }
      const user = form.get('username') ?? '';
      caller = user !== '' && (await auth.checkPassword(user, form.get('password') ?? '', ctx.ip)) ? { kind: 'user', user } : fail(auth, ctx);
      scopes = form.getAll('scope');
    } else {
      ctx.set('Allow', 'GET, POST');
      throw new RegistryError(ErrorCode.UNSUPPORTED, `method ${ctx.method} not allowed here`, { status: 405 });
    }
    const user = caller.kind === 'user' ? caller.user : undefined;
    const ns = query(ctx).get('ns') ?? undefined;
    const access: AccessEntry[] = [];
    for (const s of parseScopes(scopes)) {
      if (s.type !== 'repository' || !isValidName(s.name)) continue;
      let key;
      try {
        key = namespaces.resolve(s.name, ns);
      } catch {
        continue; // an unknown registry prefix: nothing to grant
      }
      const allowed = auth.granted(user, key);
      const wanted = new Set<string>(s.actions.includes('*') ? ACTIONS : s.actions);
      if (wanted.has('push')) wanted.add('overlay');
      const actions = ACTIONS.filter((a: Action) => wanted.has(a) && allowed.has(a));
      if (actions.length > 0) access.push({ type: 'repository', name: key.key, actions });
    }
    const issued = await auth.tokens.issue(user, access);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt };
  };
}

function fail(auth: ClientAuth, ctx: Context): never {
  throw auth.unauthorized(ctx, 'invalid username or password');
}

function readForm(ctx: Context): Promise<Buffer> {
  return readBody(ctx, MAX_FORM_BYTES, (limit) => new RegistryError(ErrorCode.UNSUPPORTED, 'token request body too large', { status: 413, detail: { limit } }));
}
