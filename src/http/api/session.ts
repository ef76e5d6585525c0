import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto';

/** What signs session cookies: an HMAC under the key replicas already share for client tokens (TokenSigner.mac). */
export type Mac = (label: string, data: string) => Buffer;

export interface SessionOptions {
  mac: Mac;
  now: () => number;
  random: (bytes: number) => Buffer;
  /** session lifetime (default 8 h) */
  ttlMs?: number;
  /** logged-out sessions, shared by every replica (the metadata store); absent: a logout only clears the cookie */
  revocations?: SessionRevocations;
}

/** Where a logout is remembered until the session would have expired anyway. */
export interface SessionRevocations {
  revoke(sid: string, ttlMs: number): Promise<void>;
  revoked(sid: string): Promise<boolean>;
}

export interface Session {
  user: string;
  /** random id: binds the CSRF token to this session */
  sid: string;
  /** ms since epoch */
  expires: number;
  /** what state-changing calls must send in X-Wharf-CSRF */
  csrf: string;
  /** external token mode: the login's credentials, sealed (AES-256-GCM); only unseal() opens them */
  sealed?: string;
}

/** What an external token service needs again each time its short-lived tokens expire. */
export interface SealedCredentials {
  username: string;
  password: string;
}

export const SESSION_COOKIE = 'wharf_session';
export const CSRF_HEADER = 'x-wharf-csrf';
const SESSION_LABEL = 'wharf-ui-session';
const CSRF_LABEL = 'wharf-ui-csrf';
const SEAL_LABEL = 'wharf-ui-credentials-key';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const DEFAULT_TTL_MS = 8 * 60 * 60 * 1000;

const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * Stateless session cookies: `base64url(JSON{u,sid,exp}).base64url(HMAC)`. Any replica holding the shared
 * key verifies them; nothing is stored. The CSRF token is a second HMAC over the session id, so it cannot
 * be derived from the cookie (which scripts cannot read anyway: HttpOnly).
 */
export class Sessions {
  readonly ttlMs: number;

  constructor(private readonly o: SessionOptions) {
    this.ttlMs = o.ttlMs ?? DEFAULT_TTL_MS;
  }

  /** A new session; `credentials` (external token mode) travel sealed inside the signed cookie. */
  issue(user: string, credentials?: SealedCredentials): { cookie: string; session: Session } {
    const sid = b64(this.o.random(16));
    const expires = this.o.now() + this.ttlMs;
    const sealed = credentials && this.seal(sid, credentials);
    const payload = b64(JSON.stringify({ u: user, sid, exp: expires, ...(sealed ? { c: sealed } : {}) }));
    const cookie = `${payload}.${b64(this.o.mac(SESSION_LABEL, payload))}`;
    return { cookie, session: { user, sid, expires, csrf: this.csrf(sid), ...(sealed ? { sealed } : {}) } };
  }

  /** A session's sealed credentials; undefined when it has none or they do not open (another key, tampering). */
  unseal(session: Session): SealedCredentials | undefined {
    if (session.sealed === undefined) return undefined;
    try {
      const raw = Buffer.from(session.sealed, 'base64url');
      const decipher = createDecipheriv('aes-256-gcm', this.sealKey(), raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(session.sid));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      const plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
      const { u, p } = JSON.parse(plain.toString('utf8')) as { u?: unknown; p?: unknown };
      return typeof u === 'string' && typeof p === 'string' ? { username: u, password: p } : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * AES-256-GCM under a key derived from the shared signing key (so every replica opens it), a random IV,
   * and the session id as associated data (a sealed value moved into another session does not open).
   */
  private seal(sid: string, c: SealedCredentials): string {
    const iv = this.o.random(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey(), iv);
    cipher.setAAD(Buffer.from(sid));
    const body = Buffer.concat([cipher.update(JSON.stringify({ u: c.username, p: c.password }), 'utf8'), cipher.final()]);
    return b64(Buffer.concat([iv, cipher.getAuthTag(), body]));
  }

  /** 32 bytes: an HMAC-SHA256 under the signing key with its own label (never the key itself). */
  private sealKey(): Buffer {
    return this.o.mac(SEAL_LABEL, '');
  }

  /** The session a cookie value carries; undefined when forged, malformed or expired. */
  read(value: string | undefined): Session | undefined {
    if (!value) return undefined;
    const dot = value.indexOf('.');
    if (dot <= 0) return undefined;
    const payload = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), 'base64url');
    const want = this.o.mac(SESSION_LABEL, payload);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return undefined;
    let body: unknown;
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    const { u, sid, exp, c } = (body ?? {}) as { u?: unknown; sid?: unknown; exp?: unknown; c?: unknown };
    if (typeof u !== 'string' || typeof sid !== 'string' || typeof exp !== 'number' || exp <= this.o.now()) return undefined;
    return { user: u, sid, expires: exp, csrf: this.csrf(sid), ...(typeof c === 'string' ? { sealed: c } : {}) };
  }

  /**
   * The session a cookie carries, unless it was logged out (on any replica). A revocation list that cannot be
   * read counts as revoked: during a metadata outage a session cookie reads as anonymous rather than letting a
   * logged-out (possibly stolen) cookie back in.
   */
  async readLive(value: string | undefined): Promise<Session | undefined> {
    const session = this.read(value);
    if (!session || !this.o.revocations) return session;
    const revoked = await this.o.revocations.revoked(session.sid).catch(() => true);
    return revoked ? undefined : session;
  }

  /** Logs a session out everywhere until it expires; false when it could not be recorded. */
  async revoke(session: Session): Promise<boolean> {
    if (!this.o.revocations) return false;
    const ttl = session.expires - this.o.now();
    if (ttl <= 0) return true;
    return this.o.revocations.revoke(session.sid, ttl).then(
      () => true,
      () => false,
    );
  }

  /** Whether a request's X-Wharf-CSRF value is this session's token. */
  csrfMatches(session: Session, given: string): boolean {
    const a = Buffer.from(given);
    const b = Buffer.from(session.csrf);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private csrf(sid: string): string {
    return b64(this.o.mac(CSRF_LABEL, sid));
  }
}

/** The Set-Cookie value: HttpOnly, SameSite=Strict, Path=/, Secure when the request came over TLS. */
export function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [`${SESSION_COOKIE}=${value}`, 'Path=/', `Max-Age=${maxAgeSeconds}`, 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])].join('; ');
}

/** One cookie's value from a Cookie header (the first of that name). */
export function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
