import { repoMatcher } from '../../oci/index.js';

export type Action = 'pull' | 'push' | 'delete' | 'overlay';
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete', 'overlay'];

/** In `rules[].users`: any authenticated user, and callers without credentials. */
export const ANY_USER = '*';
export const ANONYMOUS = 'anonymous';

export interface AccessRule {
  repositories: readonly string[];
  users: readonly string[];
  actions: readonly Action[];
}

interface Compiled {
  matches: (name: string) => boolean;
  users: ReadonlySet<string>;
  actions: readonly Action[];
}

/**
 * Grants only, never denials: a request is allowed when any rule grants it. An authenticated user gets
 * at least what anonymous callers get (logging in never loses access). Repository names are the
 * canonical ones (see ClientAuth.names): an alias of a repository is the same repository here.
 */
export class AccessRules {
  private readonly rules: Compiled[];

  constructor(
    rules: readonly AccessRule[],
    private readonly anonymousPull: boolean,
  ) {
    this.rules = rules.map((r) => ({ matches: repoMatcher(r.repositories), users: new Set(r.users), actions: r.actions }));
  }

  /** What `user` (undefined: a caller without credentials) may do to a repository known by these names. */
  allowed(user: string | undefined, names: readonly string[]): Set<Action> {
    const out = new Set<Action>(this.anonymousPull ? ['pull'] : []);
    for (const r of this.rules) {
      const applies = r.users.has(ANONYMOUS) || (user !== undefined && (r.users.has(ANY_USER) || r.users.has(user)));
      if (applies && names.some((n) => r.matches(n))) for (const a of r.actions) out.add(a);
    }
    return out;
  }
}
