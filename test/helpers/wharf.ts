import { spawn, type ChildProcess } from 'node:child_process';
import { waitExit } from './process.js';
import { writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { request, type HttpResponse } from './http.js';
import { freePort } from './ports.js';
import { tempDir, type TempDir } from './tmp.js';
import { blobStored, withTestStorage } from './test-storage.js';

/** The repository root: wharf is started from here so `src/cli.ts` and tsx resolve as in `make run`. */
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

// A test process that dies (timeout, crash, failed assertion in a hook) must not leave wharf running.
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface StartWharfOptions {
  /**
   * Written as YAML to a temp file and passed with --config. Default `{ upstreams: [] }` (a plain registry).
   * With WHARF_TEST_STORAGE=s3 and no `storage` key, `storage.s3` is added (test/helpers/test-storage.ts).
   */
  config?: object;
  /** Extra environment (WHARF_* overrides); applied after WHARF_LISTEN / WHARF_DATA_DIR, so it can replace them. */
  env?: Record<string, string>;
  /** Reuse a data directory (e.g. to start a second process on data a first one wrote); kept on stop. */
  dataDir?: string;
  /** Listen on this port; default a free one. */
  port?: number;
  /** How long to wait for `GET /v2/` → 200 (default 30 s: tsx compiles on first start). */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL (default 15 s). */
  stopTimeoutMs?: number;
  /**
   * wharf serves HTTPS (config `tls` set by the caller): `url` becomes https://, and readiness is checked
   * trusting these CA certificates (PEM).
   */
  https?: { ca: string[] };
  /** A command prefix wharf runs under (e.g. a seccomp filter, test/helpers/seccomp.ts); it must exec the rest. */
  wrap?: string[];
}

export interface WharfExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** true when stop() had to fall back to SIGKILL */
  forced: boolean;
}

export interface WharfProcess {
  /** http://127.0.0.1:PORT (https:// with the `https` option) */
  url: string;
  /** 127.0.0.1:PORT, for image references (`${host}/repo:tag`). */
  host: string;
  port: number;
  dataDir: string;
  /** OS pid of the running wharf process (undefined while stopped), e.g. to sample its RSS in /proc. */
  readonly pid: number | undefined;
  /** SIGTERM and wait for exit (SIGKILL after stopTimeoutMs); removes the temp dir unless dataDir was given. Safe twice. */
  stop(): Promise<void>;
  /** SIGKILL (a crash); port and data are kept so restart() can bring it back. */
  kill(): Promise<void>;
  /** Graceful stop (if running), then start again on the same port and data. */
  restart(): Promise<void>;
  /** stdout + stderr of every run so far (the last 1 MiB). */
  logs(): string;
  /** How the most recent run that has ended ended (kept across restart()); undefined before any has. */
  lastExit(): WharfExit | undefined;
}

const LOG_KEEP = 1 << 20;

/** Inherited WHARF_* variables (a developer's shell) must not change what a test starts. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
  return env;
}

/** GET over TLS trusting `ca`; only the status matters for readiness. */
function httpsStatus(url: string, ca: string[], timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.once('error', reject);
  });
}

async function ready(url: string, deadline: number, alive: () => boolean, ca?: string[]): Promise<void> {
  let last = 'no answer';
  for (;;) {
    if (!alive()) throw new Error(`process exited before ${url} answered (${last})`);
    try {
      const status = ca ? await httpsStatus(url, ca, 2000) : (await request(url, { timeoutMs: 2000 })).status;
      // 401: auth is configured and the anonymous ping gets the login challenge; the server is up either way.
      if (status === 200 || status === 401) return;
      last = `HTTP ${status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 in time (${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `wharf serve` as a child process (the real entry point) and waits for `GET /v2/` → 200. */
export async function startWharf(opts: StartWharfOptions = {}): Promise<WharfProcess> {
  const dir: TempDir = await tempDir('wharf-proc-');
  try {
    const dataDir = opts.dataDir ?? join(dir.path, 'data');
    const configPath = join(dir.path, 'wharf.yaml');
    await writeFile(configPath, stringify(await withTestStorage(opts.config ?? { upstreams: [] }, dataDir)));

    let port = opts.port ?? (await freePort());
    const scheme = opts.https ? 'https' : 'http';
    let output = '';
    let child: ChildProcess | undefined;
    let exit: WharfExit | undefined;
    const keep = (b: Buffer): void => {
      output += b.toString('utf8');
      if (output.length > LOG_KEEP) output = output.slice(-LOG_KEEP);
    };

    // Children stop() had to SIGKILL after SIGTERM was ignored for too long.
    const forced = new WeakSet<ChildProcess>();

    const launch = async (): Promise<void> => {
      const env = { ...baseEnv(), WHARF_LISTEN: `127.0.0.1:${port}`, WHARF_DATA_DIR: dataDir, ...(opts.env ?? {}) };
      const argv = [...(opts.wrap ?? []), process.execPath, '--import', 'tsx', 'src/cli.ts', 'serve', '--config', configPath];
      const c = spawn(argv[0]!, argv.slice(1), {
        cwd: REPO_ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = c;
      live.add(c);
      c.stdout?.on('data', keep);
      c.stderr?.on('data', keep);
      let exited = false;
      c.once('exit', (code, signal) => {
        exited = true;
        live.delete(c);
        exit = { code, signal, forced: forced.has(c) };
        // Not asked to stop (stop/kill clear `child` first): a crash. Its stack is the one clue a CI log can give.
        if (child === c) process.stderr.write(`[wharf on port ${port} exited unexpectedly: code ${code}, signal ${signal}]\n${output.slice(-4000)}\n`);
      });
      c.once('error', (err) => {
        exited = true;
        output += `\n[spawn error] ${String(err)}\n`;
      });
      try {
        await ready(`${scheme}://127.0.0.1:${port}/v2/`, Date.now() + (opts.startTimeoutMs ?? 30_000), () => !exited, opts.https?.ca);
      } catch (err) {
        await terminate('SIGKILL');
        throw new Error(`wharf did not start on port ${port}: ${(err as Error).message}\n--- logs ---\n${output.slice(-4000)}`);
      }
    };

    const start = async (): Promise<void> => {
      if (child !== undefined) return;
      try {
        await launch();
      } catch (err) {
        // The free port can be taken between freePort() and listen(); try once more elsewhere unless pinned.
        if (opts.port !== undefined || !/EADDRINUSE/.test(output)) throw err;
        port = await freePort();
        await launch();
      }
    };

    const terminate = async (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
      const c = child;
      child = undefined;
      if (c === undefined) return;
      c.kill(signal);
      if (await waitExit(c, signal === 'SIGTERM' ? (opts.stopTimeoutMs ?? 15_000) : 5000)) return;
      forced.add(c);
      c.kill('SIGKILL');
      await waitExit(c, 5000);
    };

    await start();
    let stopped = false;
    const proc: WharfProcess = {
      get url() {
        return `${scheme}://127.0.0.1:${port}`;
      },
      get host() {
        return `127.0.0.1:${port}`;
      },
      get port() {
        return port;
      },
      get pid() {
        return child?.pid;
      },
      dataDir,
      async stop() {
        if (stopped) return;
        stopped = true;
        await terminate('SIGTERM');
        await dir.cleanup();
      },
      kill: () => terminate('SIGKILL'),
      async restart() {
        await terminate('SIGTERM');
        // Same port, no retry elsewhere: upload Locations handed out before must keep working.
        await launch();
      },
      logs: () => output,
      lastExit: () => exit,
    };
    return proc;
  } catch (err) {
    await dir.cleanup();
    throw err;
  }
}

// ---- small client-side helpers for tests that talk to a wharf process ----

/**
 * One HTTP exchange whose request target is sent exactly as given: `new URL()` (used by request())
 * would resolve `..` and `//` before wharf could see them, which hides the path tricks under test.
 */
export function rawRequest(
  base: { port: number },
  method: string,
  rawPath: string,
  init: { headers?: Record<string, string>; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<HttpResponse> {
  const body = typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
    headers['content-length'] = String(body.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: base.port, method, path: rawPath, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', reject);
        res.once('end', () => {
          const out: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers)) {
            if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
          }
          resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks) });
        });
      },
    );
    const timeout = init.timeoutMs ?? 30_000;
    req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${rawPath}: no answer within ${timeout} ms`)));
    req.once('error', reject);
    req.end(body);
  });
}

export interface OciErrorBody {
  errors: Array<{ code: string; message?: unknown; detail?: unknown }>;
}

/** The error codes of an OCI error body; throws (with the body) when it is not one. */
export function errorCodes(res: HttpResponse): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new Error(`HTTP ${res.status}: body is not JSON: ${JSON.stringify(res.body.toString('utf8').slice(0, 300))}`);
  }
  const errs = (parsed as Partial<OciErrorBody>).errors;
  if (!Array.isArray(errs) || errs.length === 0 || !errs.every((e) => typeof e?.code === 'string')) {
    throw new Error(`HTTP ${res.status}: not an OCI error body: ${res.body.toString('utf8').slice(0, 300)}`);
  }
  return errs.map((e) => e.code);
}

/** `<dataDir>/blobs/<alg>/<2 hex>/<hex>`: where wharf keeps a blob's bytes on the filesystem backend. */
export function blobFile(dataDir: string, digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  return join(dataDir, 'blobs', alg, hex.slice(0, 2), hex);
}

/** Whether a blob is in the cache now: its file under dataDir, or (WHARF_TEST_STORAGE=s3) its object. */
export function onDisk(dataDir: string, digest: string): Promise<boolean> {
  return blobStored(dataDir, digest);
}

/**
 * Waits until every digest is in the cache directory. A mirrored blob becomes a cache entry a moment after
 * its client got the last byte (the commit's fsync and rename follow the digest check), so a test that
 * looks at the disk right after a pull waits for it.
 */
export async function waitOnDisk(dataDir: string, digests: string[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing: string[] = [];
    for (const d of digests) if (!(await onDisk(dataDir, d))) missing.push(d);
    if (missing.length === 0) return;
    if (Date.now() > deadline) throw new Error(`not cached after ${timeoutMs} ms: ${missing.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Waits until the work a pull leaves behind is done: no upstream fetch in flight (each ends with its cache
 * commit and link) and no mirrored manifest still being stored (the catalog answers only after those). For
 * tests that read wharf's bookkeeping (admin API, eviction) right after a pull. Needs /metrics on the
 * main port without auth, and anonymous access to the catalog.
 */
export async function waitIdle(w: Pick<WharfProcess, 'url'>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await request(`${w.url}/metrics`);
    const inflight = /^wharf_inflight_fetches (\S+)$/m.exec(m.body.toString('utf8'))?.[1];
    if (m.status !== 200 || inflight === undefined) throw new Error(`waitIdle: no wharf_inflight_fetches in /metrics (HTTP ${m.status})`);
    if (Number(inflight) === 0) break;
    if (Date.now() > deadline) throw new Error(`waitIdle: ${inflight} fetches still in flight after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const catalog = await request(`${w.url}/v2/_catalog`);
  if (catalog.status !== 200) throw new Error(`waitIdle: catalog answered HTTP ${catalog.status}`);
}

export { filesUnder } from './test-storage.js';

/** Short description of a response for assertion messages. */
export function describeResponse(res: HttpResponse): string {
  const body = res.body.toString('utf8').slice(0, 400);
  return `HTTP ${res.status} ${JSON.stringify(res.headers)} ${body}`;
}

/**
 * HEAD over a bare socket, returning every byte after the header block as `body`. Node's HTTP client
 * knows HEAD responses have no body and would silently drop one, so only this can see a server send one.
 */
export function rawHead(base: { port: number }, path: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(base.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.setTimeout(10_000, () => sock.destroy(new Error(`HEAD ${path}: no answer`)));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('error', reject);
    sock.once('connect', () => {
      const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      sock.write(`HEAD ${path} HTTP/1.1\r\nHost: 127.0.0.1:${base.port}\r\nConnection: close\r\n${extra}\r\n`);
    });
    // Connection: close makes the server end the stream after its answer, stray body bytes included.
    sock.once('end', () => {
      const all = Buffer.concat(chunks);
      const cut = all.indexOf('\r\n\r\n');
      if (cut < 0) {
        reject(new Error(`HEAD ${path}: incomplete response ${JSON.stringify(all.toString('latin1').slice(0, 200))}`));
        return;
      }
      const [statusLine, ...lines] = all.subarray(0, cut).toString('latin1').split('\r\n');
      const out: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) out[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1] ?? 0), headers: out, body: all.subarray(cut + 4) });
    });
  });
}
