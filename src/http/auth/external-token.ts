import { X509Certificate, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { libtrustKeyId } from './libtrust-kid.js';

/** Every algorithm an external token may be signed with: asymmetric only (never `none`, never HMAC). */
export const EXTERNAL_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

/** Distribution's clock-skew allowance on `exp` and `nbf`. */
export const LEEWAY_SECONDS = 60;

/** One `access` claim entry of an external token, as the token service wrote it. */
export interface GrantedAccess {
  type: string;
  name: string;
  actions: string[];
}

export interface VerifiedToken {
  access: GrantedAccess[];
  subject: string;
  /** ms since epoch */
  expiresAt: number;
}

export interface ExternalTokenOptions {
  issuer: string;
  service: string;
  /** PEM text of the trusted certificates (Distribution's rootcertbundle) */
  rootCerts?: string;
  /** JSON text of a JWK Set */
  jwks?: string;
  algorithms?: readonly string[];
  now?: () => number;
}

/**
 * Verifies registry tokens signed by an external token service the way Distribution does: the signing key
 * comes from the header's `x5c` chain (verified up to a bundle certificate), its `jwk` (only if trusted) or
 * its `kid` (a bundle key's libtrust ID, or a JWK Set key's `kid`); then signature, `iss`, `aud`, `exp`/`nbf`
 * (60 s leeway). Nothing is fetched or shared: each replica verifies on its own.
 */
export class ExternalTokenVerifier {
  private readonly roots: X509Certificate[];
  /** trusted keys by libtrust key ID, and JWK Set keys also by their own `kid` */
  private readonly keys = new Map<string, KeyObject>();
  private readonly algorithms: string[];
  private readonly now: () => number;

  constructor(private readonly o: ExternalTokenOptions) {
    this.now = o.now ?? Date.now;
    this.algorithms = [...(o.algorithms ?? EXTERNAL_ALGORITHMS)].filter((a) => (EXTERNAL_ALGORITHMS as readonly string[]).includes(a));
    this.roots = o.rootCerts === undefined ? [] : parsePemCertificates(o.rootCerts);
    for (const c of this.roots) this.keys.set(libtrustKeyId(c.publicKey), c.publicKey);
    for (const { kid, key } of o.jwks === undefined ? [] : parseJwks(o.jwks)) {
      this.keys.set(libtrustKeyId(key), key);
      if (kid !== undefined) this.keys.set(kid, key);
    }
    if (this.keys.size === 0) throw new Error('auth.token: rootcertbundle/jwks hold no usable key');
  }

  /** The token's `access` claim when it is valid; undefined when it is malformed, untrusted, expired or not for us. */
  async verify(token: string): Promise<GrantedAccess[] | undefined> {
    return (await this.verifyToken(token))?.access;
  }

  /** A valid token's grants, subject (`sub`, '' when absent) and expiry (ms since epoch); undefined as verify. */
  async verifyToken(token: string): Promise<VerifiedToken | undefined> {
    try {
      const header = decodeProtectedHeader(token);
      if (typeof header.alg !== 'string' || !this.algorithms.includes(header.alg)) return undefined;
      const key = this.signingKey(header);
      if (!key) return undefined;
      const { payload } = await jwtVerify(token, key, {
        issuer: this.o.issuer,
        audience: this.o.service,
        algorithms: this.algorithms,
        currentDate: new Date(this.now()),
        clockTolerance: LEEWAY_SECONDS,
        requiredClaims: ['exp'],
      });
      const access = Array.isArray(payload.access) ? payload.access.filter(isGrant) : [];
      return { access, subject: typeof payload.sub === 'string' ? payload.sub : '', expiresAt: payload.exp! * 1000 };
    } catch {
      return undefined;
    }
  }

  private signingKey(h: { x5c?: unknown; jwk?: unknown; kid?: unknown }): KeyObject | undefined {
    if (Array.isArray(h.x5c) && h.x5c.length > 0) return this.chainKey(h.x5c);
    if (h.jwk !== undefined && typeof h.jwk === 'object' && h.jwk !== null) {
      // An embedded key counts only when it is one of the trusted keys (Distribution: "untrusted JWK").
      const key = createPublicKey({ key: h.jwk as JsonWebKey, format: 'jwk' });
      return this.keys.get(libtrustKeyId(key));
    }
    if (typeof h.kid === 'string') return this.keys.get(h.kid);
    return undefined;
  }

  /** The leaf's key when the `x5c` chain (leaf first) leads to a bundle certificate and every link is valid now. */
  private chainKey(x5c: unknown[]): KeyObject | undefined {
    if (this.roots.length === 0 || x5c.length > 10 || !x5c.every((c) => typeof c === 'string')) return undefined;
    const chain = (x5c as string[]).map((b64) => new X509Certificate(Buffer.from(b64, 'base64')));
    const now = this.now();
    const current = (c: X509Certificate): boolean => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
    if (!chain.every(current)) return undefined;
    const issues = (issuer: X509Certificate, c: X509Certificate): boolean => issuer.ca && c.checkIssued(issuer) && c.verify(issuer.publicKey);
    for (let i = 0; i < chain.length; i++) {
      const c = chain[i]!;
      if (this.roots.some((r) => r.raw.equals(c.raw) || (current(r) && issues(r, c)))) return chain[0]!.publicKey;
      const next = chain[i + 1];
      if (!next || !issues(next, c)) return undefined;
    }
    return undefined;
  }
}

function isGrant(e: unknown): e is GrantedAccess {
  const x = e as Partial<GrantedAccess> | null;
  return typeof x?.type === 'string' && typeof x.name === 'string' && Array.isArray(x.actions) && x.actions.every((a) => typeof a === 'string');
}

/** Every certificate in a PEM file (other blocks are skipped). */
export function parsePemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** The public keys of a JWK Set (private parts are ignored; symmetric keys are refused). */
function parseJwks(text: string): Array<{ kid?: string; key: KeyObject }> {
  const set = JSON.parse(text) as { keys?: unknown };
  if (!Array.isArray(set.keys)) throw new Error('auth.token.jwks: not a JWK Set (no "keys" array)');
  return set.keys.map((jwk: Record<string, unknown>) => {
    if (jwk.kty === 'oct') throw new Error('auth.token.jwks: symmetric (oct) keys are not accepted');
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = jwk;
    const key = createPublicKey({ key: pub as JsonWebKey, format: 'jwk' });
    return typeof jwk.kid === 'string' ? { kid: jwk.kid, key } : { key };
  });
}

/** Reads the configured files once at start-up. */
export function readExternalKeys(files: { rootcertbundle?: string; jwks?: string }): { rootCerts?: string; jwks?: string } {
  const out: { rootCerts?: string; jwks?: string } = {};
  if (files.rootcertbundle !== undefined) out.rootCerts = readFileSync(files.rootcertbundle, 'utf8');
  if (files.jwks !== undefined) out.jwks = readFileSync(files.jwks, 'utf8');
  return out;
}
