import { createHash } from 'node:crypto';
import type { Htpasswd } from './htpasswd.js';

const digest = (s: string): string => createHash('sha256').update(s).digest('base64');

/**
 * Who can log in: htpasswd users, and static tokens (each belonging to a user name), usable as
 * `Authorization: Bearer <token>` or as that user's password. Tokens are kept and looked up by hash.
 */
export class Users {
  private readonly tokens = new Map<string, string>();

  constructor(
    private readonly htpasswd: Htpasswd | undefined,
    tokens: ReadonlyArray<{ user: string; token: string }>,
  ) {
    for (const t of tokens) this.tokens.set(digest(t.token), t.user);
  }

  async checkPassword(user: string, password: string): Promise<boolean> {
    if (this.tokens.get(digest(password)) === user) return true;
    return this.htpasswd ? this.htpasswd.verify(user, password) : false;
  }

  /** The user a static token belongs to. */
  tokenUser(token: string): string | undefined {
    return this.tokens.get(digest(token));
  }
}
