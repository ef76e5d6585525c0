import { BlockList, isIP } from 'node:net';
import type { Context, Next } from 'koa';

/**
 * Reverse-proxy headers (X-Forwarded-For/-Proto/-Host), believed only from configured proxies.
 * Koa's own `app.proxy` believes whoever connects, which would let any client choose the address in
 * the access log and the scheme and host of every absolute URL wharf builds.
 */

/** `::ffff:10.1.2.3` → `10.1.2.3`; `[::1]:80` → `::1`; `10.1.2.3:5678` → `10.1.2.3`; anything else that is no IP → undefined. */
export function parseIp(raw: string): string | undefined {
  let s = raw.trim().toLowerCase();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracketed) s = bracketed[1] as string;
  else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(s)) s = s.slice(0, s.lastIndexOf(':'));
  s = s.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
  return isIP(s) === 0 ? undefined : s;
}

/** A predicate over addresses from `ranges` (IPs or CIDR ranges, as config validated them). */
export function proxyMatcher(ranges: readonly string[]): (address: string) => boolean {
  if (ranges.length === 0) return () => false;
  const list = new BlockList();
  for (const r of ranges) {
    const [ip = '', bits] = r.split('/');
    const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(ip, type);
    else list.addSubnet(ip, Number(bits), type);
  }
  return (address) => list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

export interface ForwardedHop {
  /** the client: the right-most address in [X-Forwarded-For…, peer] that is not a trusted proxy */
  address: string;
  /** how many trusted proxies stand between the client and wharf (0: the peer is untrusted, headers ignored) */
  proxies: number;
}

/**
 * Walks X-Forwarded-For from the right: every trusted proxy vouches for the hop to its left, so the
 * first untrusted (or unparsable) entry is where the client's own, unverifiable claims begin.
 */
export function clientHop(peer: string, forwardedFor: readonly string[], trusts: (address: string) => boolean): ForwardedHop {
  if (!trusts(peer)) return { address: peer, proxies: 0 };
  let address = peer;
  let proxies = 1;
  for (let i = forwardedFor.length - 1; i >= 0; i--) {
    const ip = parseIp(forwardedFor[i] as string);
    if (ip === undefined) break;
    address = ip;
    if (!trusts(ip)) break;
    if (i > 0) proxies++;
  }
  return { address, proxies };
}

/**
 * The value set by the proxy that received the request from the client. Proxies that append put
 * theirs at the end, one per proxy, after anything the client sent; proxies that overwrite leave one.
 */
export function forwardedValue(values: readonly string[], proxies: number): string | undefined {
  if (values.length === 0) return undefined;
  return values[Math.max(0, values.length - proxies)];
}

const HOST = /^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

function list(header: string): string[] {
  return header === '' ? [] : header.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

/**
 * Sets ctx.ip, and for requests through a trusted proxy ctx.protocol and ctx.host (hence ctx.href and
 * publicOrigin), from the forwarded headers. First in the middleware chain, so the access log sees it.
 */
export function forwarded(trustedProxies: readonly string[]) {
  const trusts = proxyMatcher(trustedProxies);
  return async function honourForwarded(ctx: Context, next: Next): Promise<void> {
    const peer = parseIp(ctx.req.socket.remoteAddress ?? '') ?? '';
    const hop = clientHop(peer, list(ctx.get('x-forwarded-for')), trusts);
    ctx.request.ip = hop.address;
    ctx.state.viaTrustedProxy = hop.proxies > 0;
    if (hop.proxies > 0) {
      const proto = forwardedValue(list(ctx.get('x-forwarded-proto')), hop.proxies)?.toLowerCase();
      if (proto === 'http' || proto === 'https') Object.defineProperty(ctx.request, 'protocol', { value: proto });
      const host = forwardedValue(list(ctx.get('x-forwarded-host')), hop.proxies);
      if (host !== undefined && HOST.test(host)) Object.defineProperty(ctx.request, 'host', { value: host });
    }
    await next();
  };
}

/** Whether ctx.ip came from a trusted proxy's X-Forwarded-For (set by `forwarded`). */
export function viaTrustedProxy(ctx: Pick<Context, 'state'>): boolean {
  return ctx.state.viaTrustedProxy === true;
}

/**
 * `https://mirror.example.com` as the client reached wharf: for absolute URLs (a token realm). Not
 * Koa's ctx.origin, which in Koa 3 is the request's Origin header, i.e. whatever the client sent.
 */
export function publicOrigin(ctx: Context): string {
  return `${ctx.protocol}://${publicHost(ctx)}`;
}

/**
 * The Host header (or a trusted proxy's X-Forwarded-Host) when it is a plain `host[:port]`; anything else
 * (`evil.example",error="x`, none at all) gives the address and port the request came in on, so what a
 * client sends is never reflected into a URL or a header as it is.
 */
function publicHost(ctx: Context): string {
  if (HOST.test(ctx.host)) return ctx.host;
  const { localAddress, localPort } = ctx.req.socket;
  const ip = parseIp(localAddress ?? '') ?? '127.0.0.1';
  return `${isIP(ip) === 6 ? `[${ip}]` : ip}:${localPort ?? ''}`;
}
