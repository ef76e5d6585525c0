import { isIP } from 'node:net';

/**
 * Where a blob redirect may go. Registries hand blobs off to CDNs (S3, CloudFront, Cloudflare R2), so a
 * redirect may leave the upstream's host, but only for an operator-listed host or (opt-in) a public https
 * one — and never into loopback or internal networks, which would turn the mirror into an SSRF proxy.
 */
export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unique-local'
  | 'cgnat'
  | 'unspecified'
  /** multicast, broadcast, documentation, benchmarking, reserved: nothing a blob lives on */
  | 'reserved';

export function classifyAddress(ip: string): AddressClass {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  const noZone = bare.split('%')[0] ?? bare;
  const v = isIP(noZone);
  if (v === 4) return classifyV4(parseV4(noZone));
  if (v === 6) return classifyV6(parseV6(noZone));
  return 'reserved'; // not an address at all: never treat as public
}

function parseV4(s: string): number[] {
  return s.split('.').map((p) => Number(p));
}

function classifyV4(o: number[]): AddressClass {
  const [a = 0, b = 0, c = 0] = o;
  if (a === 0) return 'unspecified'; // 0.0.0.0/8 "this network" (0.0.0.0 reaches localhost on Linux)
  if (a === 127) return 'loopback';
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return 'private';
  if (a === 169 && b === 254) return 'link-local';
  if (a === 100 && b >= 64 && b <= 127) return 'cgnat';
  if (a >= 224) return 'reserved'; // multicast 224/4, reserved 240/4, broadcast
  if (a === 192 && b === 0 && (c === 0 || c === 2)) return 'reserved'; // IETF protocol assignments, TEST-NET-1
  if (a === 198 && (b === 18 || b === 19)) return 'reserved'; // benchmarking
  if ((a === 198 && b === 51 && c === 100) || (a === 203 && b === 0 && c === 113)) return 'reserved'; // TEST-NET-2/3
  return 'public';
}

/** Eight 16-bit groups; handles `::` and a trailing dotted quad. */
function parseV6(s: string): number[] {
  let text = s.toLowerCase();
  let tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const q = parseV4(dotted[1] as string);
    tail = [((q[0] ?? 0) << 8) | (q[1] ?? 0), ((q[2] ?? 0) << 8) | (q[3] ?? 0)];
    text = text.slice(0, -dotted[1]!.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head = '', rest] = text.split('::') as [string, string | undefined];
  const toGroups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = toGroups(head);
  const right = rest === undefined ? [] : toGroups(rest);
  const fill = 8 - left.length - right.length - tail.length;
  return [...left, ...new Array<number>(Math.max(fill, 0)).fill(0), ...right, ...tail];
}

function classifyV6(g: number[]): AddressClass {
  const at = (i: number): number => g[i] ?? 0;
  const embeddedV4 = (hi: number, lo: number): AddressClass =>
    classifyV4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  const zeroUpTo = (n: number): boolean => g.slice(0, n).every((x) => x === 0);
  if (zeroUpTo(8)) return 'unspecified';
  if (zeroUpTo(7) && at(7) === 1) return 'loopback';
  if (zeroUpTo(5) && at(5) === 0xffff) return embeddedV4(at(6), at(7)); // v4-mapped ::ffff:a.b.c.d
  if (zeroUpTo(6)) return 'reserved'; // deprecated v4-compatible ::a.b.c.d
  if (at(0) === 0x64 && at(1) === 0xff9b && at(2) === 0 && at(3) === 0 && at(4) === 0 && at(5) === 0) {
    return embeddedV4(at(6), at(7)); // NAT64 64:ff9b::/96 reaches the embedded v4 address
  }
  if (at(0) === 0x2002) return embeddedV4(at(1), at(2)); // 6to4 carries a v4 address too
  if ((at(0) & 0xffc0) === 0xfe80) return 'link-local';
  if ((at(0) & 0xffc0) === 0xfec0) return 'private'; // deprecated site-local
  if ((at(0) & 0xfe00) === 0xfc00) return 'unique-local';
  if ((at(0) & 0xff00) === 0xff00) return 'reserved'; // multicast
  if (at(0) === 0x2001 && at(1) === 0x0db8) return 'reserved'; // documentation
  return 'public';
}

const defaultPort: Record<string, string> = { 'http:': '80', 'https:': '443' };

function normHost(h: string): string {
  const lower = h.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * One `redirectHosts` entry against a URL: `cdn.example.com` (any port), `cdn.example.com:8443`,
 * `*.example.com` (any subdomain, not the apex), `127.0.0.1:5001`, `[::1]:5001`.
 */
export function hostMatches(pattern: string, target: URL): boolean {
  let p = pattern.trim().toLowerCase();
  if (p === '') return false;
  let port: string | undefined;
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(p);
  if (m) {
    p = m[1] as string;
    port = m[2];
  }
  const host = normHost(target.hostname);
  const targetPort = target.port || defaultPort[target.protocol] || '';
  if (port !== undefined && port !== targetPort) return false;
  p = normHost(p);
  if (p.startsWith('*.')) {
    const suffix = p.slice(1); // ".example.com"
    return host.length > suffix.length && host.endsWith(suffix);
  }
  return host === p;
}

export function matchesAny(patterns: readonly string[], target: URL): boolean {
  return patterns.some((p) => hostMatches(p, target));
}

export function sameOrigin(a: URL, b: URL): boolean {
  return a.protocol === b.protocol && normHost(a.hostname) === normHost(b.hostname) && (a.port || defaultPort[a.protocol]) === (b.port || defaultPort[b.protocol]);
}

export interface RedirectContext {
  upstream: URL;
  redirectHosts: readonly string[];
  redirectPublicHttps: boolean;
  /** address classes the upstream's own host resolves to: those are as trusted as the upstream itself */
  upstreamClasses: ReadonlySet<AddressClass>;
}

/** Decides before any DNS lookup whether `target` could be allowed; `addresses` settles it afterwards. */
export function redirectNamePolicy(target: URL, ctx: Omit<RedirectContext, 'upstreamClasses'>): { ok: true; by: 'origin' | 'list' | 'public' } | { ok: false; reason: string } {
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    return { ok: false, reason: `scheme ${target.protocol} is not http(s)` };
  }
  if (ctx.upstream.protocol === 'https:' && target.protocol === 'http:') {
    return { ok: false, reason: 'redirect downgrades https to http' };
  }
  if (target.username !== '' || target.password !== '') return { ok: false, reason: 'redirect URL carries userinfo' };
  if (sameOrigin(target, ctx.upstream)) return { ok: true, by: 'origin' };
  if (matchesAny(ctx.redirectHosts, target)) return { ok: true, by: 'list' };
  if (ctx.redirectPublicHttps && target.protocol === 'https:') return { ok: true, by: 'public' };
  return { ok: false, reason: `host ${target.host} is not in redirectHosts` };
}

/** The address half: every address the target resolves to must be acceptable. */
export function redirectAddressPolicy(
  addresses: readonly string[],
  by: 'origin' | 'list' | 'public',
  ctx: Pick<RedirectContext, 'upstreamClasses'>,
): { ok: true } | { ok: false; reason: string } {
  if (by === 'origin') return { ok: true };
  if (addresses.length === 0) return { ok: false, reason: 'host has no addresses' };
  for (const a of addresses) {
    const cls = classifyAddress(a);
    if (cls === 'public') continue;
    // an upstream that itself lives on loopback/private space may hand off within that same class
    if (by === 'list' && ctx.upstreamClasses.has(cls)) continue;
    return { ok: false, reason: `host resolves to a ${cls} address (${a})` };
  }
  return { ok: true };
}

/**
 * Second-level labels under which country TLDs sell names (`example.co.uk`): enough to tell
 * `example.co.uk` from `co.uk` without shipping the Public Suffix List.
 */
const COMMON_SLDS = new Set(['ac', 'co', 'com', 'edu', 'go', 'gob', 'gov', 'ltd', 'mil', 'ne', 'net', 'nic', 'or', 'org', 'plc', 'sch']);

/**
 * The "registrable domain" of a host name, approximated: its last two labels, or three when the TLD is
 * a two-letter country code under a common second level (`example.co.uk`). An IP literal is only itself.
 * Without the Public Suffix List, hosting suffixes such as `s3.amazonaws.com` count as one domain: an
 * upstream there shares it with other tenants (the address policy still keeps internal addresses out).
 */
export function registrableDomain(hostname: string): string {
  const h = normHost(hostname.startsWith('[') ? hostname.slice(1, -1) : hostname);
  if (isIP(h)) return h;
  const labels = h.split('.');
  if (labels.length <= 2) return h;
  const tld = labels.at(-1) as string;
  const sld = labels.at(-2) as string;
  const keep = tld.length === 2 && COMMON_SLDS.has(sld) ? 3 : 2;
  return labels.slice(-keep).join('.');
}

export interface RealmContext {
  upstream: URL;
  /** extra hosts (same pattern syntax as redirectHosts) the upstream's token realm may be on */
  tokenRealmHosts: readonly string[];
}

/**
 * Where a Bearer challenge's realm may send wharf: the upstream's own host (any port), a host under the
 * upstream's registrable domain (`auth.docker.io` for `registry-1.docker.io`), or a listed one. The
 * result's `by` feeds redirectAddressPolicy: only the upstream's own host skips the address check.
 */
export function realmNamePolicy(target: URL, ctx: RealmContext): { ok: true; by: 'origin' | 'list' } | { ok: false; reason: string } {
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    return { ok: false, reason: `scheme ${target.protocol} is not http(s)` };
  }
  if (target.username !== '' || target.password !== '') return { ok: false, reason: 'realm URL carries userinfo' };
  const host = normHost(target.hostname);
  const own = normHost(ctx.upstream.hostname);
  if (host === own) return { ok: true, by: 'origin' };
  if (matchesAny(ctx.tokenRealmHosts, target)) return { ok: true, by: 'list' };
  const domain = registrableDomain(own);
  if (!isIP(domain) && registrableDomain(host) === domain) return { ok: true, by: 'list' };
  return { ok: false, reason: `host ${target.host} is not ${own}, not under ${domain} and not in tokenRealmHosts` };
}
