import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';

/** Users and bcrypt hashes of an htpasswd file; `skipped` names lines that are not bcrypt (MD5, SHA1, crypt). */
export interface HtpasswdEntries {
  users: Map<string, string>;
  skipped: string[];
}

const BCRYPT = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** Parses `user:hash` lines as `htpasswd -B` writes them. Only bcrypt is accepted, as in Distribution. */
export function parseHtpasswd(text: string): HtpasswdEntries {
  const users = new Map<string, string>();
  const skipped: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    const user = i > 0 ? line.slice(0, i) : '';
    const hash = i > 0 ? line.slice(i + 1) : '';
    if (user !== '' && BCRYPT.test(hash)) users.set(user, hash);
    else skipped.push(user || '(unnamed line)');
  }
  return { users, skipped };
}

export interface HtpasswdOptions {
  now?: () => number;
  /** how often the file's mtime is looked at (default 2 s) */
  recheckMs?: number;
  /** told about non-bcrypt lines and unreadable reloads (never about a password) */
  warn?: (message: string, detail: Record<string, unknown>) => void;
}

// Salt and checksum of a hash compared when the user does not exist (no password matches it), so a probe
// cannot tell unknown users by the answer's speed. It is given the highest cost in the file (dummyHash).
const DUMMY_TAIL = 'N3Fuiuj13sw4Om8h/MMPuus7hnIVXeRqFZENcn/GFtZ7eo8IJlGWe';
const DUMMY_MIN_COST = 5;

/** A hash no password matches that costs as much to check as the most expensive one in `hashes`. */
export function dummyHash(hashes: Iterable<string>): string {
  let cost = DUMMY_MIN_COST;
  for (const h of hashes) cost = Math.min(31, Math.max(cost, Number(h.slice(4, 6)))); // bcrypt allows 4..31
  return `$2b$${String(cost).padStart(2, '0')}$${DUMMY_TAIL}`;
}
const VERIFIED_MAX = 1000;

/**
 * An htpasswd file, re-read when its mtime or size changes. bcrypt is slow on purpose, and skopeo
 * and Basic-auth clients send the password on every request: a successful check is remembered
 * (keyed by a hash of user, password and stored hash, so a changed file or password never matches).
 */
export class Htpasswd {
  private entries: HtpasswdEntries = { users: new Map(), skipped: [] };
  private dummy = dummyHash([]);
  private version = '';
  private checkedAt = -Infinity;
  private loading: Promise<void> | undefined;
  private readonly verified = new Set<string>();
  private readonly now: () => number;
  private readonly recheckMs: number;

  constructor(
    private readonly path: string,
    private readonly opts: HtpasswdOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.recheckMs = opts.recheckMs ?? 2000;
  }

  /** Reads the file now, at start-up; throws if it cannot be read (start-up should fail, not every login). */
  load(): void {
    const st = statSync(this.path);
    this.apply(readFileSync(this.path, 'utf8'), `${st.mtimeMs}:${st.size}`);
    this.checkedAt = this.now();
  }

  async verify(user: string, password: string): Promise<boolean> {
    await this.refresh();
    const hash = this.entries.users.get(user);
    const key = createHash('sha256').update(`${user}\0${password}\0${hash ?? ''}`).digest('base64');
    if (hash !== undefined && this.verified.has(key)) return true;
    const ok = await bcrypt.compare(password, hash ?? this.dummy);
    if (!ok || hash === undefined) return false;
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.values().next().value!);
    this.verified.add(key);
    return true;
  }

  private refresh(): Promise<void> {
    if (this.now() - this.checkedAt < this.recheckMs) return Promise.resolve();
    this.loading ??= this.reloadIfChanged().finally(() => {
      this.loading = undefined;
      this.checkedAt = this.now();
    });
    return this.loading;
  }

  private async reloadIfChanged(): Promise<void> {
    try {
      const st = await stat(this.path);
      const version = `${st.mtimeMs}:${st.size}`;
      if (version !== this.version) this.apply(await readFile(this.path, 'utf8'), version);
    } catch (e) {
      // Keep the users we have: a file being replaced (or briefly missing) must not lock everyone out.
      this.opts.warn?.('htpasswd file could not be re-read; keeping the previous users', { path: this.path, err: (e as Error).message });
    }
  }

  private apply(text: string, version: string): void {
    this.entries = parseHtpasswd(text);
    this.dummy = dummyHash(this.entries.users.values());
    this.version = version;
    this.verified.clear();
    if (this.entries.skipped.length > 0) {
      this.opts.warn?.('htpasswd lines without a bcrypt hash are ignored (use htpasswd -B)', { path: this.path, users: this.entries.skipped });
    }
  }
}
