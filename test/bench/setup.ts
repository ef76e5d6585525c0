import { startFaultProxy, type FaultProxy, type ProxiedRequest } from '../helpers/fault-proxy.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { startByteCounter, type ByteCounter } from './byte-counter.js';
import { startDistributionProxy } from './distribution-proxy.js';
import { startWharfBuild } from './processes.js';

export type TargetKind = 'wharf' | 'distribution';
export const KINDS: TargetKind[] = ['wharf', 'distribution'];

/** A mirror under test: wharf (production build) or Distribution in proxy mode, in front of one upstream. */
export interface Target {
  kind: TargetKind;
  url: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

export interface UpstreamLink {
  url: string;
  username?: string;
  password?: string;
}

export interface TargetOptions {
  /** wharf only: upstream tagFreshness (default: wharf's default). */
  tagFreshness?: string;
  /** Extra node flags for wharf (profiling). */
  nodeArgs?: string[];
  /** wharf only: log.level (default: wharf's default, info, which writes the access log) */
  logLevel?: 'info' | 'warn';
  /** wharf only: the `storage` section (e.g. `{ s3: {...} }`; default: the filesystem under dataDir) */
  storage?: Record<string, unknown>;
}

export async function startTarget(kind: TargetKind, upstream: UpstreamLink, opts: TargetOptions = {}): Promise<Target> {
  if (kind === 'wharf') {
    const credentials = upstream.username === undefined ? {} : { credentials: { username: upstream.username, password: upstream.password } };
    const freshness = opts.tagFreshness === undefined ? {} : { tagFreshness: opts.tagFreshness };
    const log = opts.logLevel === undefined ? {} : { log: { level: opts.logLevel } };
    const storage = opts.storage === undefined ? {} : { storage: opts.storage };
    // Default settings plus the upstream, as the README's quick start has it.
    const w = await startWharfBuild({
      config: { upstreams: [{ name: 'hub', url: upstream.url, default: true, ...credentials, ...freshness }], ...log, ...storage },
      nodeArgs: opts.nodeArgs ?? (process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []),
    });
    return { kind, url: w.url, pid: w.pid, stop: () => w.stop() };
  }
  const d = await startDistributionProxy({ remoteUrl: upstream.url, username: upstream.username, password: upstream.password });
  return { kind, url: d.url, pid: d.pid, stop: () => d.stop() };
}

export interface UpstreamWindow {
  /** Requests that reached the upstream registry since mark(). */
  requests(): ProxiedRequest[];
  /** Bytes the upstream sent back since mark(), headers included. */
  bytesDown(): number;
}

/**
 * The one real upstream every mirror and the direct client use: Distribution 2.8 (anonymous pulls),
 * behind a proxy that counts requests (and injects 429s) and a byte counter that can throttle the
 * link. The chain: client or mirror → byte counter (throttle) → counting proxy → registry.
 */
export interface Hub {
  link: UpstreamLink;
  registry: RegistryProcess;
  proxy: FaultProxy;
  counter: ByteCounter;
  mark(): UpstreamWindow;
  stop(): Promise<void>;
}

export async function startHub(): Promise<Hub> {
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const registry = await startRegistry();
    stops.push(() => registry.stop());
    const proxy = await startFaultProxy(registry.url);
    stops.push(() => proxy.stop());
    const counter = await startByteCounter(proxy.port);
    stops.push(() => counter.stop());
    return {
      link: { url: counter.url },
      registry,
      proxy,
      counter,
      mark() {
        proxy.reset();
        counter.reset();
        return { requests: () => [...proxy.requests], bytesDown: () => counter.down };
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
