import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import type { UpstreamConfig } from '../../config/types.js';

/**
 * Credentials for one upstream. A `token` (a PAT, a Docker Hub access token) is used the way GHCR and
 * Docker Hub accept it: as the Basic password at the token endpoint, or as the bearer itself when no
 * token endpoint is offered. The secret never reaches a log: JSON and util.inspect show it redacted.
 */
export class Credentials {
  readonly #password: string;

  constructor(
    readonly username: string,
    password: string,
    /** 'token' when the secret came from token/tokenFile */
    readonly kind: 'password' | 'token',
  ) {
    this.#password = password;
  }

  get password(): string {
    return this.#password;
  }

  /** `Basic base64(user:pass)` */
  basicHeader(): string {
    return `Basic ${Buffer.from(`${this.username}:${this.#password}`, 'utf8').toString('base64')}`;
  }

  toJSON(): Record<string, string> {
    return { username: this.username, kind: this.kind, password: '[redacted]' };
  }

  toString(): string {
    return `Credentials(${this.username}, [redacted])`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

export type ReadSecretFile = (path: string) => string;

const readUtf8: ReadSecretFile = (p) => readFileSync(p, 'utf8');

/**
 * Resolves the configured credentials once, at start (secret files are read here and never again).
 * Returns undefined when nothing is configured. Throws when a secret file cannot be read or a
 * password is given without a username, naming the upstream but never the secret.
 */
export function resolveCredentials(
  upstream: string,
  cfg: UpstreamConfig['credentials'],
  readFile: ReadSecretFile = readUtf8,
): Credentials | undefined {
  if (!cfg) return undefined;
  const read = (path: string, what: string): string => {
    try {
      return readFile(path).trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new Error(`upstream ${upstream}: cannot read ${what} file ${path} (${code})`);
    }
  };
  const token = cfg.token !== undefined ? cfg.token : cfg.tokenFile !== undefined ? read(cfg.tokenFile, 'token') : undefined;
  if (token !== undefined && token !== '') {
    // Docker Hub and GHCR ignore the username of a PAT login but require one to be present.
    return new Credentials(cfg.username ?? 'token', token, 'token');
  }
  const password =
    cfg.password !== undefined ? cfg.password : cfg.passwordFile !== undefined ? read(cfg.passwordFile, 'password') : undefined;
  if (password === undefined || password === '') {
    if (cfg.username !== undefined) throw new Error(`upstream ${upstream}: credentials.username given without a password`);
    return undefined;
  }
  if (cfg.username === undefined || cfg.username === '') {
    throw new Error(`upstream ${upstream}: credentials.password given without a username`);
  }
  return new Credentials(cfg.username, password, 'password');
}
