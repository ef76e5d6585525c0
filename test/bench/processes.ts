import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort, waitForHttp } from '../helpers/ports.js';
import { waitExit } from '../helpers/process.js';
import { tempDir } from '../helpers/tmp.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A server process the bench started: where it listens, its pid (for /proc), and how to stop it. */
export interface Server {
  url: string;
  pid: number;
  /** The process's log file (wharf) or error log (nginx). */
  log: string;
  stop(): Promise<void>;
}

/** Spawns with stdout/stderr to a file (as a deployment would log), waits for `probe` to answer. */
async function launch(cmd: string, args: string[], opts: { dir: string; probe: string; env?: NodeJS.ProcessEnv; cleanup: () => Promise<void> }): Promise<Server> {
  const log = join(opts.dir, 'process.log');
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { cwd: REPO_ROOT, env: opts.env ?? process.env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  live.add(child);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    live.delete(child);
  });
  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    if (!(await waitExit(child, 15_000))) {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    }
    await opts.cleanup();
  };
  try {
    await waitForHttp(opts.probe, 30_000, () => !exited);
  } catch (err) {
    const out = await readFile(log, 'utf8').catch(() => '');
    await stop();
    throw new Error(`${cmd} did not start: ${(err as Error).message}\n${out.slice(-2000)}`);
  }
  return { url: opts.probe.replace(/\/v2\/$|\/$/, ''), pid: child.pid!, log, stop };
}

export interface WharfBuildOptions {
  /** Extra config merged over `{ upstreams }` (default settings otherwise). */
  config: Record<string, unknown>;
  /** Node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']. */
  nodeArgs?: string[];
}

/**
 * The production build, as deployed: `node dist/cli.js serve` (run `make build` first), its JSON log
 * going to a file rather than through the bench process.
 */
export async function startWharfBuild(opts: WharfBuildOptions): Promise<Server> {
  const dir = await tempDir('wharf-bench-');
  const port = await freePort();
  const config = join(dir.path, 'wharf.yaml');
  await writeFile(config, stringify(opts.config));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
  env.WHARF_LISTEN = `127.0.0.1:${port}`;
  env.WHARF_DATA_DIR = join(dir.path, 'data');
  const args = [...(opts.nodeArgs ?? []), 'dist/cli.js', 'serve', '--config', config];
  return launch(process.execPath, args, { dir: dir.path, env, probe: `http://127.0.0.1:${port}/v2/`, cleanup: dir.cleanup });
}

/**
 * nginx serving files from `root` with sendfile: the physical reference for how fast this machine can
 * move a file from disk to a loopback client. Its own config, prefix and pid file; nothing system-wide.
 */
export async function startNginx(root: string): Promise<Server> {
  const dir = await tempDir('wharf-nginx-');
  const port = await freePort();
  for (const t of ['client', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(join(dir.path, t));
  const conf = join(dir.path, 'nginx.conf');
  await writeFile(
    conf,
    [
      // root: the temp dirs are 0700, and a worker dropping to nobody could not read the files.
      'user root;',
      'worker_processes auto;',
      'daemon off;',
      `pid ${join(dir.path, 'nginx.pid')};`,
      `error_log ${join(dir.path, 'process.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      '  sendfile on; tcp_nopush on;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir.path, t === 'client_body' ? 'client' : t)};`),
      `  server { listen 127.0.0.1:${port}; root ${root}; location / { default_type application/octet-stream; } }`,
      '}',
      '',
    ].join('\n'),
  );
  return launch('nginx', ['-p', dir.path, '-c', conf, '-e', join(dir.path, 'process.log')], { dir: dir.path, probe: `http://127.0.0.1:${port}/`, cleanup: dir.cleanup });
}
