import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Registry } from '../../core/types.js';
import type { Logger } from '../../observability/types.js';
import { ClientAuth } from '../middleware/client-auth.js';
import { Htpasswd } from './htpasswd.js';
import { AccessRules, type AccessRule } from './rules.js';
import { TokenSigner } from './tokens.js';
import { Users } from './users.js';
import { LOGIN_LIMITS, LoginLimiter } from './login-limiter.js';

import type { Namespaces } from '../../core/types.js';
import { ExternalTokenAuth } from './external-auth.js';
import { ExternalTokenVerifier, readExternalKeys } from './external-token.js';

export { ClientAuth } from '../middleware/client-auth.js';
export { ExternalTokenAuth } from './external-auth.js';
export { tokenEndpoint, TOKEN_PATH } from './token-endpoint.js';

/** The `auth` configuration as http/ needs it (structurally config's AuthConfig; file paths absolute). */
export interface AuthSettings {
  htpasswd?: string;
  tokens?: ReadonlyArray<{ user: string; token?: string; tokenFile?: string }>;
  anonymousPull: boolean;
  rules?: readonly AccessRule[];
  token: {
    realm?: string; service: string; issuer: string; expiry: number; secretFile?: string;
    rootcertbundle?: string; jwks?: string; signingalgorithms?: readonly string[];
  };
}

/** Distribution's external token mode: `rootcertbundle` or `jwks` set (config validation refuses own users and rules then). */
export function isExternalTokenAuth(s: AuthSettings): boolean {
  return s.token.rootcertbundle !== undefined || s.token.jwks !== undefined;
}

/** External token mode: reads the bundle and JWK Set once at start-up (no usable key fails start-up). */
export function createExternalAuth(s: AuthSettings, o: { namespaces: Namespaces; now?: () => number }): ExternalTokenAuth {
  if (s.token.realm === undefined) throw new Error('auth.token.realm is required with rootcertbundle/jwks');
  const verifier = new ExternalTokenVerifier({
    issuer: s.token.issuer,
    service: s.token.service,
    ...readExternalKeys(s.token),
    ...(s.token.signingalgorithms ? { algorithms: s.token.signingalgorithms } : {}),
    ...(o.now ? { now: o.now } : {}),
  });
  return new ExternalTokenAuth({ namespaces: o.namespaces, verifier, realm: s.token.realm, service: s.token.service });
}

export interface ClientAuthOptions {
  registry: Pick<Registry, 'namespaces' | 'overlays'>;
  logger: Logger;
  /** the signing key when no secretFile is set (replicas share one through Redis); default random per process */
  secret?: () => Uint8Array;
  now?: () => number;
}

const MIN_SECRET_BYTES = 32;

/**
 * The key wharf signs with (client tokens; the web UI's session cookies, also in external token mode):
 * `auth.token.secretFile`, else the one replicas share through Redis, else random per process.
 */
export function signingSecret(s: AuthSettings, shared?: () => Uint8Array): () => Uint8Array {
  if (s.token.secretFile) {
    const key = new Uint8Array(readFileSync(s.token.secretFile));
    if (key.length < MIN_SECRET_BYTES) throw new Error(`auth.token.secretFile must hold at least ${MIN_SECRET_BYTES} bytes`);
    return () => key;
  }
  if (shared) return shared;
  const key = new Uint8Array(randomBytes(MIN_SECRET_BYTES));
  return () => key;
}

/** Reads the htpasswd, token and secret files once at start-up (a missing file fails start-up, not logins). */
export function createClientAuth(s: AuthSettings, o: ClientAuthOptions): ClientAuth {
  let htpasswd: Htpasswd | undefined;
  if (s.htpasswd) {
    htpasswd = new Htpasswd(s.htpasswd, { now: o.now, warn: (msg, detail) => o.logger.warn(detail, msg) });
    htpasswd.load();
  }
  const tokens: Array<{ user: string; token: string }> = [];
  for (const t of s.tokens ?? []) {
    const token = t.token ?? (t.tokenFile ? readFileSync(t.tokenFile, 'utf8').trim() : '');
    if (token !== '') tokens.push({ user: t.user, token });
  }
  const secret = signingSecret(s, o.secret);
  return new ClientAuth({
    registry: o.registry,
    users: new Users(htpasswd, tokens),
    limiter: new LoginLimiter({ ...LOGIN_LIMITS, now: o.now ?? Date.now }),
    rules: new AccessRules(s.rules ?? [], s.anonymousPull),
    tokens: new TokenSigner({ issuer: s.token.issuer, service: s.token.service, expiryMs: s.token.expiry, secret, now: o.now }),
    service: s.token.service,
    realm: s.token.realm,
  });
}
