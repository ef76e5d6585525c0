import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { waitExit } from './process.js';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { freePort, waitForHttp } from './ports.js';
import { tempDir } from './tmp.js';
import { startTokenServer, type TokenServer, type TokenServerOptions } from './token-server.js';

const run = promisify(execFile);

// A test process that dies (timeout, crash) must not leave registries running behind it.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export type RegistryAuth =
  | { kind: 'token'; tokenServer: TokenServer; service?: string; issuer?: string }
  | { kind: 'htpasswd'; users: Record<string, string> };

export interface RegistryOptions {
  auth?: RegistryAuth;
  /** Runs it as a pull-through cache of another registry (Distribution's `proxy:` section). */
  proxy?: { remoteurl: string; username?: string; password?: string };
  /** How long to wait for /v2/ to answer (default 10 s). */
  startTimeoutMs?: number;
  /** Serve https with this certificate and key (PEM files); `url` is then https://. */
  tls?: { certPath: string; keyPath: string };
  /** Distribution's `notifications:` section (webhook endpoints), written as given. */
  notifications?: Record<string, unknown>;
}

export interface RegistryProcess {
  /** http://127.0.0.1:PORT (https:// with the `tls` option) */
  url: string;
  /** 127.0.0.1:PORT, for image references (`${host}/repo:tag`). */
  host: string;
  port: number;
  /** The storage root; lets a test damage or inspect upstream content. */
  dataDir: string;
  /** OS pid of the running process (benchmarks sample its memory). */
  readonly pid: number | undefined;
  /** Kills the process and removes its config and data. Safe to call twice. */
  stop(): Promise<void>;
  /** Kills and starts again on the same port with the same data (an upstream outage in between). */
  restart(): Promise<void>;
  /** Kills the process but keeps port and data, so `start()` brings it back (a longer outage). */
  kill(): Promise<void>;
  start(): Promise<void>;
}

/** An htpasswd file made by the real `htpasswd -B` (apache2-utils), cost 4. */
export async function htpasswdFile(path: string, users: Record<string, string>): Promise<void> {
  const lines: string[] = [];
  for (const [user, pass] of Object.entries(users)) {
    // Cost 4 (the minimum) keeps every authenticated request fast; Distribution only accepts bcrypt.
    const { stdout } = await run('htpasswd', ['-nbB', '-C', '4', user, pass]);
    lines.push(stdout.trim());
  }
  await writeFile(path, lines.join('\n') + '\n');
}

/** Starts a real CNCF Distribution 2.8 (`docker-registry serve`) on 127.0.0.1 with filesystem storage. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<RegistryProcess> {
  const dir = await tempDir('wharf-registry-');
  try {
    const port = await freePort();
    const dataDir = join(dir.path, 'data');
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: dataDir },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
    };
    if (opts.tls) (config.http as Record<string, unknown>).tls = { certificate: opts.tls.certPath, key: opts.tls.keyPath };
    if (opts.proxy) config.proxy = opts.proxy;
    if (opts.notifications) config.notifications = opts.notifications;
    const auth = opts.auth;
    if (auth?.kind === 'token') {
      config.auth = {
        token: {
          realm: auth.tokenServer.url,
          service: auth.service ?? auth.tokenServer.service,
          issuer: auth.issuer ?? auth.tokenServer.issuer,
          rootcertbundle: auth.tokenServer.certPath,
        },
      };
    } else if (auth?.kind === 'htpasswd') {
      const path = join(dir.path, 'htpasswd');
      await htpasswdFile(path, auth.users);
      config.auth = { htpasswd: { realm: 'wharf-test-registry', path } };
    }
    const configPath = join(dir.path, 'config.yml');
    await writeFile(configPath, stringify(config));

    const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    // Probed over plain http even with tls: Go's server answers that with a 400, which is enough to know it is up.
    const probeUrl = `http://127.0.0.1:${port}/v2/`;
    let child: ChildProcess | undefined;
    let output = '';

    const start = async (): Promise<void> => {
      if (child !== undefined) return;
      output = '';
      const c = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      live.add(c);
      // Keep the last bit of output so a failed start explains itself.
      const keep = (b: Buffer): void => {
        output = (output + b.toString('utf8')).slice(-4000);
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
      try {
        await waitForHttp(probeUrl, opts.startTimeoutMs ?? 10_000, () => !exited);
      } catch (err) {
        await kill();
        throw new Error(`docker-registry did not start: ${(err as Error).message}\n${output}`);
      }
    };

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

    await start();
    let stopped = false;
    return {
      url,
      host: `127.0.0.1:${port}`,
      port,
      dataDir,
      get pid() {
        return child?.pid;
      },
      start,
      kill,
      async restart() {
        await kill();
        await start();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await kill();
        await dir.cleanup();
      },
    };
  } catch (err) {
    await dir.cleanup();
    throw err;
  }
}

export interface TokenRegistry {
  registry: RegistryProcess;
  tokens: TokenServer;
  stop(): Promise<void>;
}

export type TokenRegistryOptions = Omit<TokenServerOptions, 'service' | 'issuer'> & {
  service?: string;
  issuer?: string;
};

/** A registry behind a token service, shaped like Docker Hub (anonymous pull by default). */
export async function startTokenRegistry(opts: TokenRegistryOptions = {}): Promise<TokenRegistry> {
  const tokens = await startTokenServer({
    ...opts,
    service: opts.service ?? 'registry.test',
    issuer: opts.issuer ?? 'wharf-test-token-issuer',
  });
  let registry: RegistryProcess;
  try {
    registry = await startRegistry({ auth: { kind: 'token', tokenServer: tokens } });
  } catch (err) {
    await tokens.stop();
    throw err;
  }
  return {
    registry,
    tokens,
    async stop() {
      await registry.stop();
      await tokens.stop();
    },
  };
}

/** A registry with htpasswd (Basic) auth: every request, pulls included, needs credentials. */
export function startBasicRegistry(users: Record<string, string>): Promise<RegistryProcess> {
  return startRegistry({ auth: { kind: 'htpasswd', users } });
}
