import { execFile } from 'node:child_process';
import { listenLoopback } from './ports.js';
import { createPrivateKey, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { tempDir } from './tmp.js';

const run = promisify(execFile);

export interface TokenServerOptions {
  service: string;
  issuer: string;
  /** username → password; these get every action they ask for. */
  users?: Record<string, string>;
  /** What a request without credentials gets: a pull-only token (default, like Docker Hub) or 401. */
  anonymous?: 'pull' | 'none';
  /**
   * `expires_in` in the response and the JWT lifetime, seconds (default 300). `null` omits the field,
   * as some registries do; the JWT then lives 60 s, the lifetime clients must assume.
   */
  expiresIn?: number | null;
  /** Which response field carries the JWT (Docker Hub sends both). Default 'both'. */
  tokenField?: 'token' | 'access_token' | 'both';
  /**
   * How a token names its signing key: `x5c` (the certificate in the header, the default; Docker Hub, a
   * real Distribution's rootcertbundle) or `kid` (the libtrust key ID of the certificate's key, as Portus
   * and docker_auth send; or `kid` given here).
   */
  keyRef?: 'x5c' | 'kid';
  kid?: string;
  /** The signing key: RSA 2048 (RS256, default), EC P-256 (ES256) or Ed25519 (EdDSA). */
  keyType?: 'rsa' | 'ec' | 'ed25519';
  /**
   * What a caller gets for one requested scope item; default: users every requested action, anonymous
   * callers `pull` only (or nothing with `anonymous: 'none'`).
   */
  grant?: (user: string | undefined, type: string, name: string, actions: string[]) => string[];
}

export interface TokenRequest {
  /** The scope parameters, joined with a space when several were sent. */
  scope?: string;
  /** The Basic username, when credentials were sent. */
  user?: string;
  /** The HTTP status the token server answered with. */
  status: number;
}

export interface TokenServer {
  /** The realm: http://127.0.0.1:PORT/token */
  url: string;
  /** PEM certificate whose key signs the tokens: the registry's `rootcertbundle`. */
  certPath: string;
  service: string;
  issuer: string;
  /** PEM private key (for tests that forge tokens). */
  keyPath: string;
  /** The `kid` tokens carry with `keyRef: 'kid'`: the libtrust key ID, computed with openssl and base32. */
  kid: string;
  /** The JWS algorithm of the key. */
  alg: string;
  /** Signs arbitrary claims with this server's key and header style (`header` entries added/replacing). */
  sign(claims: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  /** Tokens issued so far. */
  readonly issued: number;
  requests: TokenRequest[];
  stop(): Promise<void>;
}

interface Access {
  type: string;
  name: string;
  actions: string[];
}

/** `repository:team/app:pull,push` → access entry; names may contain ':' only before the last one. */
function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter((a) => a !== ''),
  };
}

function parseBasic(req: IncomingMessage): { user: string; password: string } | undefined {
  const h = req.headers.authorization;
  if (h === undefined || !/^basic /i.test(h)) return undefined;
  const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return undefined;
  return { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const bytes = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(bytes.length), ...headers });
  res.end(bytes);
}

/**
 * A token service shaped like auth.docker.io, signing RS256 JWTs that a real Distribution registry
 * accepts: the certificate travels in `x5c` and is also the registry's root bundle.
 */
export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const dir = await tempDir('wharf-token-');
  const keyPath = join(dir.path, 'key.pem');
  const certPath = join(dir.path, 'cert.pem');
  let key: KeyObject;
  let x5c: string;
  let libtrustKid: string;
  const keyType = opts.keyType ?? 'rsa';
  const alg = { rsa: 'RS256', ec: 'ES256', ed25519: 'EdDSA' }[keyType];
  const newkey = { rsa: ['-newkey', 'rsa:2048'], ec: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'], ed25519: ['-newkey', 'ed25519'] }[keyType];
  try {
    await run('openssl', [
      'req', '-x509', ...newkey, '-nodes', '-keyout', keyPath, '-out', certPath,
      '-days', '2', '-subj', '/CN=wharf-test-token-issuer',
    ]);
    key = createPrivateKey(await readFile(keyPath));
    x5c = new X509Certificate(await readFile(certPath)).raw.toString('base64');
    // libtrust: SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes, base32, groups of 4 joined by ':'
    const { stdout } = await run('sh', ['-c',
      'openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | head -c 30 | base32 -w0',
      'sh', certPath]);
    libtrustKid = stdout.trim().replace(/=+$/, '').match(/.{4}/g)!.join(':');
  } catch (err) {
    await dir.cleanup();
    throw err;
  }

  const users = opts.users ?? {};
  const anonymous = opts.anonymous ?? 'pull';
  const expiresIn = opts.expiresIn === undefined ? 300 : opts.expiresIn;
  const tokenField = opts.tokenField ?? 'both';
  const requests: TokenRequest[] = [];
  let issued = 0;
  const kid = opts.kid ?? libtrustKid;
  const header = (): { alg: string; typ: string; x5c?: string[]; kid?: string } =>
    opts.keyRef === 'kid' ? { alg, typ: 'JWT', kid } : { alg, typ: 'JWT', x5c: [x5c] };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter((s) => s !== '');
    const creds = parseBasic(req);
    const record: TokenRequest = { status: 0 };
    if (scopes.length > 0) record.scope = scopes.join(' ');
    if (creds !== undefined) record.user = creds.user;
    requests.push(record);
    const deny = (status: number, message: string): void => {
      record.status = status;
      send(res, status, { details: message }, status === 401 ? { 'www-authenticate': 'Basic realm="wharf-test-token"' } : {});
    };

    if (req.method !== 'GET' || url.pathname !== '/token') return deny(404, 'not found');
    if (creds !== undefined && users[creds.user] !== creds.password) return deny(401, 'incorrect username or password');
    if (creds === undefined && anonymous === 'none') return deny(401, 'authentication required');

    // Like Docker Hub: a token is issued even when nothing is granted; the registry then refuses it.
    const access: Access[] = [];
    for (const s of scopes) {
      const a = parseScope(s);
      if (a === undefined) continue;
      const actions = opts.grant
        ? opts.grant(creds?.user, a.type, a.name, a.actions)
        : creds !== undefined ? a.actions : a.actions.filter((x) => x === 'pull');
      access.push({ ...a, actions });
    }

    const now = Math.floor(Date.now() / 1000);
    const lifetime = expiresIn ?? 60;
    const token = await new SignJWT({ access })
      .setProtectedHeader(header())
      .setIssuer(opts.issuer)
      .setSubject(creds?.user ?? '')
      .setAudience(opts.service)
      .setIssuedAt(now)
      .setNotBefore(now - 1)
      .setExpirationTime(now + lifetime)
      .setJti(randomUUID())
      .sign(key);
    issued++;
    record.status = 200;
    const body: Record<string, unknown> = { issued_at: new Date(now * 1000).toISOString() };
    if (tokenField !== 'access_token') body.token = token;
    if (tokenField !== 'token') body.access_token = token;
    if (expiresIn !== null) body.expires_in = expiresIn;
    send(res, 200, body);
  };

  const server = createServer((req, res) => {
    req.resume();
    handle(req, res).catch((err: unknown) => send(res, 500, { details: String(err) }));
  });
  const port = await listenLoopback(server);

  let stopped = false;
  return {
    url: `http://127.0.0.1:${port}/token`,
    certPath,
    keyPath,
    kid,
    alg,
    sign: (claims, extra = {}) => new SignJWT(claims).setProtectedHeader({ ...header(), ...extra } as { alg: string }).sign(key),
    service: opts.service,
    issuer: opts.issuer,
    get issued() {
      return issued;
    },
    requests,
    async stop() {
      if (stopped) return;
      stopped = true;
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await dir.cleanup();
    },
  };
}
