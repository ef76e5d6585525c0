import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdir, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, waitForHttp } from './ports.js';
import { waitExit } from './process.js';
import { tempDir } from './tmp.js';

const run = promisify(execFile);

/** Debian's python: Swift's scripts and modules live in its dist-packages, not in any other python on PATH. */
const PYTHON = '/usr/bin/python3';

// A test process that dies (timeout, crash) must not leave Swift running behind it.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface SwiftS3 {
  /** http://127.0.0.1:PORT of the proxy, speaking S3 (s3api) with path-style addressing. */
  endpoint: string;
  region: 'us-east-1';
  /** tempauth's `user_test_tester = testing .admin` as S3 credentials. */
  accessKeyId: string;
  secretAccessKey: string;
  /** A client as wharf makes it (path style, checksums only when required). */
  client(): S3Client;
  /** Creates a bucket (a name of 3 to 63 lower-case letters, digits and dashes). */
  createBucket(name: string): Promise<void>;
  /** Stops every process and removes every file. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A single-node OpenStack Swift with its s3api middleware, from Debian's packages (swift, swift-proxy,
 * swift-object, swift-container, swift-account, python3-swift, memcached), as plain processes on loopback:
 * one device per server as a plain directory, 1-replica rings, `workers = 0`, ports chosen at run time.
 * A real S3 implementation (multipart, presigned URLs, DeleteObjects), not a mock. Starts in about 4 s.
 */
export async function startSwiftS3(opts: { unref?: boolean } = {}): Promise<SwiftS3> {
  const dir = await tempDir('wharf-swift-');
  const children: ChildProcess[] = [];
  let log: Socket | undefined;
  let output = '';
  const keep = (b: Buffer | string): void => {
    output = (output + b.toString()).slice(-6000);
  };
  const stop = async (): Promise<void> => {
    for (const c of children.splice(0)) {
      c.ref();
      c.kill('SIGTERM');
      if (!(await waitExit(c, 3000))) {
        c.kill('SIGKILL');
        await waitExit(c, 2000);
      }
      live.delete(c);
    }
    log?.close();
    log = undefined;
    await dir.cleanup();
  };
  try {
    // There is no /dev/log here: the servers log by UDP to a socket of ours, kept for a failed start's message.
    log = createSocket('udp4');
    log.on('message', (m) => keep(m.toString() + '\n'));
    if (opts.unref) log.unref();
    const logPort = await new Promise<number>((resolve) => log!.bind(0, '127.0.0.1', () => resolve(log!.address().port)));
    const [proxy, object, container, account, memcache] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const swiftDir = dir.path;
    const devices = join(dir.path, 'devices');
    for (const server of ['object', 'container', 'account']) await mkdir(join(devices, server, 'd1'), { recursive: true });

    await writeFile(
      join(swiftDir, 'swift.conf'),
      ini({
        'swift-hash': { swift_hash_path_suffix: 'wharf-test', swift_hash_path_prefix: 'wharf-test' },
        'storage-policy:0': { name: 'Policy-0', default: 'yes' },
      }),
    );
    const common = (port: number, server: string) => ({
      bind_ip: '127.0.0.1',
      bind_port: String(port),
      workers: '0',
      mount_check: 'false',
      devices: join(devices, server),
      swift_dir: swiftDir,
      log_udp_host: '127.0.0.1',
      log_udp_port: String(logPort),
      log_level: 'WARNING',
    });
    for (const [server, port] of [
      ['object', object],
      ['container', container],
      ['account', account],
    ] as const) {
      await writeFile(
        join(swiftDir, `${server}-server.conf`),
        ini({
          DEFAULT: common(port, server),
          'pipeline:main': { pipeline: `${server}-server` },
          // No object-updater runs here: a container update that times out (1 s by default, easily reached with
          // the cores busy) would stay an async pending forever and the object would be missing from listings
          // (ListObjects, which gc, verify and the cache-size scan walk). Wait for the container server instead.
          [`app:${server}-server`]: { use: `egg:swift#${server}`, ...(server === 'object' ? { container_update_timeout: '30', node_timeout: '30' } : {}) },
        }),
      );
    }
    await writeFile(
      join(swiftDir, 'proxy-server.conf'),
      ini({
        DEFAULT: common(proxy, 'proxy'),
        'pipeline:main': {
          // s3api before tempauth (it turns S3 signatures into tempauth's check), slo after s3api (multipart
          // uploads are SLOs), copy for CopyObject/UploadPartCopy.
          pipeline: 'catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server',
        },
        'app:proxy-server': { use: 'egg:swift#proxy', account_autocreate: 'true' },
        'filter:tempauth': { use: 'egg:swift#tempauth', user_test_tester: 'testing .admin' },
        'filter:s3api': { use: 'egg:swift#s3api', location: 'us-east-1' },
        'filter:cache': { use: 'egg:swift#memcache', memcache_servers: `127.0.0.1:${memcache}` },
        'filter:catch_errors': { use: 'egg:swift#catch_errors' },
        'filter:gatekeeper': { use: 'egg:swift#gatekeeper' },
        'filter:healthcheck': { use: 'egg:swift#healthcheck' },
        'filter:proxy-logging': { use: 'egg:swift#proxy_logging' },
        'filter:listing_formats': { use: 'egg:swift#listing_formats' },
        'filter:copy': { use: 'egg:swift#copy' },
        'filter:slo': { use: 'egg:swift#slo' },
        'filter:dlo': { use: 'egg:swift#dlo' },
        'filter:versioned_writes': { use: 'egg:swift#versioned_writes' },
      }),
    );
    // 1-replica rings with the Python RingBuilder in one process (swift-ring-builder per ring takes ~4 s in all).
    const rings = `
import sys
from swift.common.ring import RingBuilder
d = sys.argv[1]
for name, port in (('object', ${object}), ('container', ${container}), ('account', ${account})):
    b = RingBuilder(6, 1, 0)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port, 'device': 'd1', 'weight': 100})
    b.rebalance()
    b.get_ring().save('%s/%s.ring.gz' % (d, name))
`;
    await run(PYTHON, ['-c', rings, swiftDir], { timeout: 60_000 });

    const spawnKept = (cmd: string, args: string[]): ChildProcess => {
      const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(c);
      live.add(c);
      c.stdout?.on('data', keep);
      c.stderr?.on('data', keep);
      c.once('error', (e) => keep(String(e)));
      c.once('exit', () => live.delete(c));
      if (opts.unref) unrefChild(c);
      return c;
    };
    const memcachedArgs = ['-l', '127.0.0.1', '-p', String(memcache), '-U', '0', '-m', '16'];
    if (userInfo().uid === 0) memcachedArgs.push('-u', 'root');
    spawnKept('memcached', memcachedArgs);
    const servers = [
      ['account', account],
      ['container', container],
      ['object', object],
      ['proxy', proxy],
    ] as const;
    const procs = servers.map(([server]) => spawnKept(PYTHON, [`/usr/bin/swift-${server}-server`, join(swiftDir, `${server}-server.conf`)]));
    for (const [i, [, port]] of servers.entries()) {
      const c = procs[i]!;
      await waitForHttp(`http://127.0.0.1:${port}/healthcheck`, 30_000, () => c.exitCode === null && c.signalCode === null);
    }
    let stopped = false;
    const endpoint = `http://127.0.0.1:${proxy}`;
    const client = (): S3Client =>
      new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'test:tester', secretAccessKey: 'testing' },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        requestHandler: { connectionTimeout: 5_000, requestTimeout: 30_000 },
      });
    return {
      endpoint,
      region: 'us-east-1',
      accessKeyId: 'test:tester',
      secretAccessKey: 'testing',
      client,
      async createBucket(name) {
        const c = client();
        // Right after start-up the proxy may still answer 503 while it creates the account: retry a bounded while.
        try {
          for (let attempt = 1; ; attempt++) {
            try {
              await c.send(new CreateBucketCommand({ Bucket: name }));
              return;
            } catch (e) {
              if (attempt >= 10) throw e;
              await new Promise((r) => setTimeout(r, 500));
            }
          }
        } finally {
          c.destroy();
        }
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stop();
      },
    };
  } catch (err) {
    const out = output;
    await stop();
    throw new Error(`swift did not start: ${(err as Error).message}\n${out}`, { cause: err });
  }
}

/**
 * A Swift shared by a whole test process (test/helpers/test-storage.ts) must not keep that process alive:
 * node:test ends a file when nothing else is pending, and its root `after` hook then stops Swift.
 */
function unrefChild(c: ChildProcess): void {
  c.unref();
  for (const s of [c.stdout, c.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
}

function ini(sections: Record<string, Record<string, string>>): string {
  return Object.entries(sections)
    .map(([name, kv]) => `[${name}]\n${Object.entries(kv).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`)
    .join('\n');
}
