import { createHmac, randomBytes } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';

/** One grant inside a token: Distribution's `access` claim, with wharf's canonical repository key as the name. */
export interface AccessEntry {
  type: 'repository';
  name: string;
  actions: string[];
}

export interface TokenClaims {
  /** the user the token was issued to; undefined for an anonymous token */
  user?: string;
  access: AccessEntry[];
}

export interface IssuedToken {
  token: string;
  /** seconds */
  expiresIn: number;
  /** RFC 3339 */
  issuedAt: string;
}

export interface TokenSignerOptions {
  issuer: string;
  /** audience: the `service` of the challenge */
  service: string;
  expiryMs: number;
  /** the HS256 key; called per use so a shared secret can change under it (replicas) */
  secret: () => Uint8Array;
  now?: () => number;
}

/** Signs and checks wharf's short-lived client tokens (HS256 JWTs). */
export class TokenSigner {
  private readonly now: () => number;

  constructor(private readonly opts: TokenSignerOptions) {
    this.now = opts.now ?? Date.now;
  }

  async issue(user: string | undefined, access: AccessEntry[]): Promise<IssuedToken> {
    const nowMs = this.now();
    const iat = Math.floor(nowMs / 1000);
    const expiresIn = Math.max(1, Math.ceil(this.opts.expiryMs / 1000));
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(this.opts.issuer)
      .setAudience(this.opts.service)
      .setSubject(user ?? '')
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + expiresIn)
      .setJti(randomBytes(12).toString('hex'))
      .sign(this.opts.secret());
    return { token, expiresIn, issuedAt: new Date(iat * 1000).toISOString() };
  }

  /** An HMAC-SHA256 under the signing key, kept apart from token signatures by `label` (the web UI's session cookies). */
  mac(label: string, data: string): Buffer {
    return macUnder(this.opts.secret)(label, data);
  }

  /** The claims of a valid token; undefined when it is malformed, forged, expired or for another service. */
  async verify(token: string): Promise<TokenClaims | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.opts.secret(), {
        issuer: this.opts.issuer,
        audience: this.opts.service,
        algorithms: ['HS256'],
        currentDate: new Date(this.now()),
        requiredClaims: ['exp', 'sub'],
      });
      const access = Array.isArray(payload.access) ? payload.access.filter(isEntry) : [];
      return { user: payload.sub ? payload.sub : undefined, access };
    } catch {
      return undefined;
    }
  }
}

function isEntry(e: unknown): e is AccessEntry {
  const x = e as Partial<AccessEntry> | null;
  return x?.type === 'repository' && typeof x.name === 'string' && Array.isArray(x.actions) && x.actions.every((a) => typeof a === 'string');
}

/** HMAC-SHA256 under a key, kept apart per use by `label` (what TokenSigner.mac computes, without a signer). */
export function macUnder(secret: () => Uint8Array): (label: string, data: string) => Buffer {
  return (label, data) => createHmac('sha256', secret()).update(`${label}\0${data}`).digest();
}
