import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, waitForHttp } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmp.js';

// A bench that dies half-way must not leave registries running behind it.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface DistributionProxyOptions {
  /** The registry it mirrors (`proxy.remoteurl`). */
  remoteUrl: string;
  username?: string;
  password?: string;
  startTimeoutMs?: number;
}

export interface DistributionProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** OS pid of the docker-registry process, to sample its RSS. */
  pid: number | undefined;
  /** The last 8 KiB of its output. */
  logs(): string;
  /** Kills the process and removes config and storage. Safe twice. */
  stop(): Promise<void>;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/**
 * CNCF Distribution 2.8 (`docker-registry serve`) as a pull-through cache: the configuration its
 * documentation gives for a Docker Hub mirror, with filesystem storage in a temp dir.
 */
export async function startDistributionProxy(opts: DistributionProxyOptions): Promise<DistributionProxy> {
  const dir = await tempDir('wharf-bench-distproxy-');
  let child: ChildProcess | undefined;
  let output = '';
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined) return;
    c.kill('SIGTERM');
    if (!(await waitExit(c, 2000))) {
      c.kill('SIGKILL');
      await waitExit(c, 2000);
    }
  };
  try {
    const port = await freePort();
    const proxy: Record<string, string> = { remoteurl: opts.remoteUrl };
    if (opts.username !== undefined) proxy.username = opts.username;
    if (opts.password !== undefined) proxy.password = opts.password;
    const config = {
      version: 0.1,
      log: { level: 'error', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: join(dir.path, 'data') },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
      proxy,
    };
    const configPath = join(dir.path, 'config.yml');
    await writeFile(configPath, stringify(config));

    const c = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    live.add(c);
    const keep = (b: Buffer): void => {
      output = (output + b.toString('utf8')).slice(-8192);
    };
    c.stdout?.on('data', keep);
    c.stderr?.on('data', keep);
    let exited = false;
    c.once('exit', () => {
      exited = true;
      live.delete(c);
    });
    c.once('error', (err) => {
      exited = true;
      output += String(err);
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitForHttp(`${url}/v2/`, opts.startTimeoutMs ?? 10_000, () => !exited);
    } catch (err) {
      throw new Error(`docker-registry (proxy) did not start: ${(err as Error).message}\n${output}`);
    }
    let stopped = false;
    return {
      url,
      port,
      pid: c.pid,
      logs: () => output,
      async stop() {
        if (stopped) return;
        stopped = true;
        await kill();
        await dir.cleanup();
      },
    };
  } catch (err) {
    await kill();
    await dir.cleanup();
    throw err;
  }
}
