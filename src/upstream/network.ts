import { promises as dns } from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP, type LookupFunction } from 'node:net';
import { rootCertificates } from 'node:tls';
import { Agent, buildConnector, Dispatcher, EnvHttpProxyAgent, Pool } from 'undici';
import type { UpstreamConfig } from '../config/types.js';

/** DNS for one host name: every address it resolves to. Injectable so tests can point names at loopback. */
export type LookupFn = (host: string) => Promise<string[]>;

export const systemLookup: LookupFn = async (host) =>
  (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export interface ProxyEnv {
  httpProxy?: string;
  httpsProxy?: string;
  noProxy?: string;
}

/** A literal IP is its own answer (brackets stripped); names go through `lookup`. */
export async function resolveHost(hostname: string, lookup: LookupFn): Promise<string[]> {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIP(bare)) return [bare];
  return lookup(bare);
}

/**
 * A `lookup` for net/tls.connect that resolves through `lookup` and lets `guard` veto the answer, so
 * the addresses checked are exactly the ones connected to (a second DNS answer cannot sneak in).
 */
function guardedLookup(lookup: LookupFn, guard: ConnectGuard | undefined): LookupFunction {
  return ((hostname: string, options: { all?: boolean; family?: number | string }, callback: (...args: unknown[]) => void) => {
    const resolve = async (): Promise<{ addrs: string[]; veto?: Error }> => {
      const all = await resolveHost(hostname, lookup);
      const fam = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : Number(options.family ?? 0);
      const addrs = fam === 4 || fam === 6 ? all.filter((a) => isIP(a) === fam) : all;
      const veto = await guard?.(hostname, addrs);
      return veto ? { addrs, veto } : { addrs };
    };
    resolve().then(
      ({ addrs, veto }) => {
        if (veto) return callback(veto);
        if (addrs.length === 0) {
          return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }));
        }
        if (options.all) return callback(null, addrs.map((address) => ({ address, family: isIP(address) })));
        return callback(null, addrs[0], isIP(addrs[0] as string));
      },
      (err: unknown) => callback(err),
    );
  }) as unknown as LookupFunction;
}

/** Returns an Error to refuse connecting to `host` at `addrs`. */
export type ConnectGuard = (host: string, addrs: string[]) => Promise<Error | undefined>;

/** One outbound connection wharf is about to open (or refused to open), reported before any socket exists. */
export interface ConnectAttempt {
  host: string;
  port: number;
  /** why the address policy vetoed it; absent when the socket is being opened */
  refused?: string;
}

export type ConnectObserver = (attempt: ConnectAttempt) => void;

/**
 * A connector that settles the guard before any socket is opened and reports every attempt.
 * Literal IP hosts never reach a `lookup` (net.connect skips it), so they are checked here; names are
 * checked here and again by the guarded lookup, whose answer is what the socket really connects to.
 */
function guardedConnector(
  build: buildConnector.BuildOptions,
  lookup: LookupFn,
  guard: ConnectGuard | undefined,
  observe: ConnectObserver | undefined,
): buildConnector.connector {
  const inner = buildConnector({ ...build, lookup: guardedLookup(lookup, guard) } as buildConnector.BuildOptions);
  return (options, callback) => {
    const host = options.hostname;
    const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
    const verdict = guard
      ? resolveHost(host, lookup).then(
          (addrs) => guard(host, addrs),
          (e: NodeJS.ErrnoException) => Object.assign(new Error(`cannot resolve ${host} (${e.code ?? 'error'})`), { code: e.code ?? 'ENOTFOUND' }),
        )
      : Promise.resolve(undefined);
    verdict.then(
      (veto) => {
        observe?.(veto ? { host, port, refused: veto.message } : { host, port });
        if (veto) callback(veto, null);
        else inner(options, callback);
      },
      (e: unknown) => callback(e instanceof Error ? e : new Error(String(e)), null),
    );
  };
}

export interface DispatcherOptions {
  lookup: LookupFn;
  proxyEnv?: ProxyEnv;
  /** reads tls.caFile (once, here) */
  readFile?: (path: string) => Buffer | string;
  /** vetoes connections to hosts other than the upstream's own (address-class policy) */
  guard: ConnectGuard;
  /** told of every direct connection before it is opened (through a proxy: NO_PROXY hosts only) */
  observe?: ConnectObserver;
}

/**
 * One dispatcher per upstream. The upstream's own origin gets the configured TLS settings
 * (servername, insecureSkipVerify); every other origin (token realm, CDN) is verified normally and,
 * when connected to directly, its addresses pass `guard` at connect time. Both hold whether or not a
 * proxy is configured, and for NO_PROXY hosts as for proxied ones.
 */
export function createDispatcher(cfg: UpstreamConfig, opts: DispatcherOptions): Dispatcher {
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p));
  // a private CA is added to, not substituted for, the public roots: CDNs and realms still verify
  const ca = cfg.tls.caFile !== undefined ? [...rootCertificates, readFile(cfg.tls.caFile).toString()] : undefined;
  const base = {
    connections: cfg.maxConnections,
    headersTimeout: cfg.timeouts.headers,
    bodyTimeout: cfg.timeouts.body,
  };
  const common = { timeout: cfg.timeouts.connect, ...(ca ? { ca } : {}) };
  const upstreamTls = {
    ...common,
    rejectUnauthorized: !cfg.tls.insecureSkipVerify,
    ...(cfg.tls.servername !== undefined ? { servername: cfg.tls.servername } : {}),
  };
  const upstreamConnect = guardedConnector(upstreamTls, opts.lookup, undefined, opts.observe);
  const otherConnect = guardedConnector(common, opts.lookup, opts.guard, opts.observe);
  const upstreamOrigin = new URL(cfg.url).origin;

  const p = opts.proxyEnv;
  if (p && (p.httpProxy || p.httpsProxy)) {
    // Through a proxy the proxy resolves names and the guard cannot see addresses (it applies to
    // NO_PROXY hosts, which are direct); redirects are still checked by name and DNS before they are
    // followed. Two agents so the upstream's TLS options reach only the upstream, inside the tunnel
    // (requestTls) and on a NO_PROXY direct connection (connect) alike. '' keeps undici off process.env.
    const viaProxy = (connect: object, requestTls: object): Dispatcher =>
      new EnvHttpProxyAgent({
        ...base,
        httpProxy: p.httpProxy ?? '',
        httpsProxy: p.httpsProxy ?? '',
        noProxy: p.noProxy ?? '',
        // plain http goes as absolute-form requests, as HTTP_PROXY means everywhere else (curl, Go):
        // proxies commonly refuse CONNECT to ports other than 443
        proxyTunnel: false,
        connect,
        requestTls,
        // undici builds the absolute-form client to the proxy from the factory with `connect` alone:
        // without this it would wait 300 s for headers instead of the upstream's timeouts
        factory: (origin: string | URL, options: object) => new Pool(origin, { ...base, ...options }),
      });
    return new ByOrigin(upstreamOrigin, viaProxy(upstreamConnect, upstreamTls), viaProxy(otherConnect, common));
  }
  return new Agent({
    ...base,
    factory: (origin: string | URL, options: object) => {
      const o = typeof origin === 'string' ? new URL(origin).origin : origin.origin;
      return new Pool(origin, { ...options, connect: o === upstreamOrigin ? upstreamConnect : otherConnect });
    },
  });
}

/** Sends requests for `origin` to `own` and everything else to `others`. */
class ByOrigin extends Dispatcher {
  constructor(
    private readonly origin: string,
    private readonly own: Dispatcher,
    private readonly others: Dispatcher,
  ) {
    super();
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const o = options.origin;
    const origin = o === undefined ? undefined : typeof o === 'string' ? new URL(o).origin : o.origin;
    return (origin === this.origin ? this.own : this.others).dispatch(options, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const done = Promise.all([this.own.close(), this.others.close()]).then(() => undefined);
    if (!callback) return done;
    done.then(callback, callback);
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const err = typeof a === 'function' ? null : (a ?? null);
    const callback = typeof a === 'function' ? a : b;
    const done = Promise.all([this.own.destroy(err), this.others.destroy(err)]).then(() => undefined);
    if (!callback) return done;
    done.then(callback, callback);
  }
}
