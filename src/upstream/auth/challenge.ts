/**
 * WWW-Authenticate parsing (RFC 9110 §11.6.1): one header may hold several challenges, each a scheme
 * followed by a token68 or comma-separated `name=value` params whose values may be quoted strings with
 * commas and backslash escapes. Scheme and param names are case-insensitive, so both are lowercased.
 */
export interface Challenge {
  /** lowercased: `bearer`, `basic`, … */
  scheme: string;
  /** param names lowercased; values as sent (unquoted, unescaped) */
  params: Record<string, string>;
  token68?: string;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*/;

class Scanner {
  pos = 0;
  constructor(readonly s: string) {}
  done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  skipWs(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  /** Skips whitespace and any run of empty list elements (`, ,`). */
  skipSeparators(): void {
    for (;;) {
      this.skipWs();
      if (this.peek() !== ',') return;
      this.pos++;
    }
  }
  token(): string {
    const start = this.pos;
    while (!this.done() && TCHAR.test(this.peek())) this.pos++;
    return this.s.slice(start, this.pos);
  }
  /** An unquoted value; lenient beyond RFC tokens because some registries send bare URLs. */
  bareValue(): string {
    const start = this.pos;
    while (!this.done() && !/[,\s]/.test(this.peek())) this.pos++;
    return this.s.slice(start, this.pos);
  }
  quoted(): string {
    // caller saw the opening quote
    this.pos++;
    let out = '';
    while (!this.done()) {
      const c = this.peek();
      this.pos++;
      if (c === '"') return out;
      if (c === '\\' && !this.done()) {
        out += this.peek();
        this.pos++;
      } else {
        out += c;
      }
    }
    return out; // unterminated: keep what we have rather than reject the whole header
  }
  /** True when the text at the cursor is `name =` (a param), not the start of the next challenge. */
  atParam(): boolean {
    const save = this.pos;
    const name = this.token();
    this.skipWs();
    const isParam = name.length > 0 && this.peek() === '=';
    this.pos = save;
    return isParam;
  }
}

export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  if (Array.isArray(header)) return header.flatMap((h) => parseChallenges(h));
  const sc = new Scanner(header);
  const out: Challenge[] = [];
  for (;;) {
    sc.skipSeparators();
    if (sc.done()) break;
    const scheme = sc.token();
    if (scheme === '') {
      sc.pos++; // junk character: skip it and resynchronise on the next token
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(challenge);
    sc.skipWs();
    if (!sc.atParam()) {
      const m = TOKEN68.exec(sc.s.slice(sc.pos));
      if (m && m[0].length > 0) {
        const after = sc.s.slice(sc.pos + m[0].length).trimStart();
        if (after === '' || after.startsWith(',')) {
          challenge.token68 = m[0];
          sc.pos += m[0].length;
        }
      }
    }
    // params until something that is not `name=value` (the next challenge's scheme)
    for (;;) {
      sc.skipSeparators();
      if (sc.done() || !sc.atParam()) break;
      const name = sc.token().toLowerCase();
      sc.skipWs();
      sc.pos++; // '='
      sc.skipWs();
      const value = sc.peek() === '"' ? sc.quoted() : sc.bareValue();
      if (!(name in challenge.params)) challenge.params[name] = value;
    }
  }
  return out;
}

/** The challenge wharf acts on: Bearer preferred over Basic; undefined when neither is offered. */
export function pickChallenge(challenges: readonly Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
}

/** Identity of a challenge for "did the upstream change its mind?" checks: scope/error params vary per request. */
export function challengeKey(c: Challenge | undefined): string {
  if (!c) return 'none';
  return `${c.scheme} ${c.params['realm'] ?? ''} ${c.params['service'] ?? ''}`;
}
