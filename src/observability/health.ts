import { randomBytes } from 'node:crypto';
import { open, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface ReadinessDeps {
  dataDir: string;
  minFreeBytes: number;
  checkRedis?: () => Promise<void>;
  /** metadata store degraded (Redis outage): since when, and how long last known data is served */
  degraded?: () => { since: number; graceMs: number } | undefined;
  checkUpstreams?: () => Promise<Record<string, 'ok' | string>>;
  /** bound for each check; default 1000 ms */
  timeoutMs?: number;
}

/**
 * checks.dataDir / checks.freeSpace / checks.redis: 'ok' or why not; checks.freeBytes: the reading;
 * checks.upstreams: the upstream map, or why it could not be had.
 */
export interface Readiness {
  ready: boolean;
  /** set while the metadata store is degraded (Redis outage) */
  degraded?: true;
  checks: Record<string, unknown>;
}

const DEFAULT_TIMEOUT_MS = 1000;

/**
 * Ready means "this replica can serve and cache": only a data dir it cannot write to or a disk
 * that is nearly full take it out of the load balancer. Redis and upstream trouble are reported
 * but do not: every replica shares them, so failing readiness would take all replicas out at once,
 * while the cache can still answer most pulls on its own.
 */
export async function readiness(deps: ReadinessDeps): Promise<Readiness> {
  const ms = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const [dataDir, disk, redis, upstreams] = await Promise.all([
    settle(withTimeout(probeWritable(deps.dataDir), ms)),
    settle(withTimeout(freeBytes(deps.dataDir), ms)),
    deps.checkRedis ? settle(withTimeout(deps.checkRedis(), ms)) : undefined,
    deps.checkUpstreams ? settle(withTimeout(deps.checkUpstreams(), ms)) : undefined,
  ]);

  const checks: Record<string, unknown> = {};
  checks.dataDir = dataDir.ok ? 'ok' : `not writable: ${dataDir.error}`;
  let enoughSpace = false;
  if (disk.ok) {
    checks.freeBytes = disk.value;
    enoughSpace = disk.value >= deps.minFreeBytes;
    checks.freeSpace = enoughSpace ? 'ok' : `${disk.value} bytes free, below the minimum of ${deps.minFreeBytes}`;
  } else {
    checks.freeSpace = `unknown: ${disk.error}`;
  }
  if (redis) checks.redis = redis.ok ? 'ok' : redis.error;
  const degraded = deps.degraded?.();
  if (deps.degraded) {
    checks.metadata = degraded
      ? `degraded since ${new Date(degraded.since).toISOString()}: serving last known tags and links for up to ${Math.round(degraded.graceMs / 1000)} s into the outage; writes refused`
      : 'ok';
  }
  if (upstreams) checks.upstreams = upstreams.ok ? upstreams.value : upstreams.error;

  // Degraded is reported, not unready: every replica shares the outage (see above).
  return { ready: dataDir.ok && enoughSpace, ...(degraded ? { degraded: true } : {}), checks };
}

export function liveness(): { status: 'ok' } {
  return { status: 'ok' };
}

/** What the blob store does on every commit, in small: create, write, fsync, remove. */
async function probeWritable(dir: string): Promise<void> {
  const path = join(dir, `.readyz-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile('ready\n');
    await fh.sync();
  } finally {
    await fh.close();
    await unlink(path).catch(() => undefined);
  }
}

async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: string };

async function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await p };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
