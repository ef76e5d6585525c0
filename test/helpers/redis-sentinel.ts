/**
 * A real Redis Sentinel set-up on loopback, from Debian's redis-server and redis-sentinel: one master, one
 * replica and three sentinels (quorum 2), each a process of its own in a temp dir, all on ports chosen now.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { tempDir, type TempDir } from './tmp.js';

export const SENTINEL_MASTER = 'mymaster';

export interface SentinelSet {
  /** what wharf's `redis.sentinels` takes */
  sentinels: Array<{ host: string; port: number }>;
  /** the port of the server that is master now, by the sentinels' word */
  masterPort(): Promise<number>;
  /** ports of both data servers (the first started as master) */
  dataPorts: [number, number];
  /** SIGKILLs the data server on `port` (a crash: no shutdown, no last sync) */
  kill(port: number): Promise<void>;
  /** asks one sentinel for a failover and waits until all three name the new master */
  failover(): Promise<number>;
  /** waits until the sentinels name a master other than `oldPort` */
  waitNewMaster(oldPort: number, timeoutMs?: number): Promise<number>;
  /** waits until the replica of the current master has every byte the master has written */
  waitInSync(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A child killed by a signal keeps exitCode null: both say it is gone. */
const alive = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null;

function client(port: number): Redis {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  return r;
}

/** Runs one command against a server, on a connection of its own. */
async function ask(port: number, ...args: string[]): Promise<unknown> {
  const r = client(port);
  try {
    await r.connect();
    return await r.call(args[0]!, ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ''}`);
    await sleep(100);
  }
}

/** `INFO replication` as a map. */
async function replicationInfo(port: number): Promise<Map<string, string>> {
  const text = String(await ask(port, 'INFO', 'replication'));
  return new Map(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

export async function startSentinelSet(): Promise<SentinelSet> {
  const dir: TempDir = await tempDir('wharf-sentinel-');
  const children = new Map<number, ChildProcess>();
  const run = (cmd: string, args: string[], port: number): void => {
    const c = spawn(cmd, args, { stdio: 'ignore', cwd: dir.path });
    children.set(port, c);
  };
  const killAll = (): void => {
    for (const c of children.values()) if (alive(c)) c.kill('SIGKILL');
  };
  process.once('exit', killAll);

  const [p1, p2] = [await freePort(), await freePort()];
  const base = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  run('redis-server', ['--port', String(p1), ...base], p1);
  run('redis-server', ['--port', String(p2), ...base, '--replicaof', '127.0.0.1', String(p1)], p2);
  await waitFor('replica in sync', 10_000, async () => ((await replicationInfo(p2)).get('master_link_status') === 'up' ? true : undefined));

  const sentinelPorts: number[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const conf = join(dir.path, `sentinel-${port}.conf`);
    // A sentinel rewrites its own config file as it learns: each gets a writable one.
    await writeFile(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir.path}`,
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${p1} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
        `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
        `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
        '',
      ].join('\n'),
    );
    run('redis-sentinel', [conf], port);
    sentinelPorts.push(port);
  }
  // Ready when every sentinel knows the replica and the two other sentinels (they find each other by hello messages).
  for (const s of sentinelPorts) {
    await waitFor(`sentinel ${s} ready`, 20_000, async () => {
      const m = (await ask(s, 'SENTINEL', 'MASTER', SENTINEL_MASTER)) as string[];
      const f = new Map<string, string>();
      for (let i = 0; i + 1 < m.length; i += 2) f.set(m[i]!, m[i + 1]!);
      return f.get('num-slaves') === '1' && f.get('num-other-sentinels') === '2' ? true : undefined;
    });
  }

  const masterFrom = async (sentinel: number): Promise<number> => {
    const addr = (await ask(sentinel, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER)) as [string, string];
    return Number(addr[1]);
  };
  const masterPort = (): Promise<number> => masterFrom(sentinelPorts[0]!);
  const waitNewMaster = (oldPort: number, timeoutMs = 30_000): Promise<number> =>
    waitFor('sentinels agree on a new master', timeoutMs, async () => {
      const ports = await Promise.all(sentinelPorts.map(masterFrom));
      if (!ports.every((p) => p === ports[0] && p !== oldPort)) return undefined;
      const role = (await replicationInfo(ports[0]!)).get('role');
      return role === 'master' ? ports[0] : undefined;
    });

  return {
    sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
    dataPorts: [p1, p2],
    masterPort,
    async kill(port) {
      const c = children.get(port);
      if (!c || !alive(c)) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await exited;
    },
    async failover() {
      const old = await masterPort();
      await ask(sentinelPorts[0]!, 'SENTINEL', 'FAILOVER', SENTINEL_MASTER);
      return waitNewMaster(old);
    },
    waitNewMaster,
    async waitInSync(timeoutMs = 10_000) {
      const m = await masterPort();
      await waitFor('replica caught up', timeoutMs, async () => {
        const info = await replicationInfo(m);
        const offset = Number(info.get('master_repl_offset'));
        const replica = info.get('slave0') ?? '';
        const acked = Number(/offset=(\d+)/.exec(replica)?.[1] ?? -1);
        return replica.includes('state=online') && acked >= offset ? true : undefined;
      });
    },
    async stop() {
      const exits = [...children.values()].filter(alive).map((c) => new Promise((r) => c.once('exit', r)));
      killAll();
      await Promise.all(exits);
      process.removeListener('exit', killAll);
      await dir.cleanup();
    },
  };
}
