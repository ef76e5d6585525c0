/**
 * Set-up shared by the cluster-*.test.ts suites: a Redis key prefix per test run (removed at the end), a
 * throttling proxy (slow blob bodies, so fetches on two replicas overlap mid-body), and a private
 * redis-server for outage tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { manifestAccept, request } from '../helpers/http.js';
import { sha256, type TestImage } from '../helpers/oci-image.js';
import { freePort } from '../helpers/ports.js';
import { describeResponse } from '../helpers/wharf.js';

export { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';

export interface Throttle {
  url: string;
  stop(): Promise<void>;
}

/**
 * Forwards everything to `target`; blob GET bodies go out one socket chunk per `chunkDelayMs`, so a
 * multi-MiB layer takes seconds to arrive (the fault proxy's 'delay' only delays the start).
 */
export async function startThrottle(target: string, chunkDelayMs: number): Promise<Throttle> {
  const t = new URL(target);
  const sockets = new Set<import('node:net').Socket>();
  const server: Server = createServer((req, res) => {
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.rawHeaders);
      const slow = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
      const body = slow
        ? ur.pipe(
            new Transform({
              transform(chunk: Buffer, _e, cb) {
                setTimeout(() => cb(null, chunk), chunkDelayMs);
              },
            }),
          )
        : ur;
      body.pipe(res);
      ur.once('error', () => res.destroy());
    });
    up.once('error', () => res.destroy());
    res.once('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/**
 * A private redis-server, by default without persistence (a restart loses every key, as an unpersisted Redis
 * does); with `aofDir`, every write is appended and fsynced there (a restart keeps every key); with
 * `requirePass`, clients must send that password.
 */
export async function startRedisServer(opts: { aofDir?: string; requirePass?: string } = {}): Promise<RedisServer> {
  const port = await freePort();
  const persistence = opts.aofDir === undefined ? ['--appendonly', 'no'] : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', opts.aofDir];
  if (opts.requirePass !== undefined) persistence.push('--requirepass', opts.requirePass);
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${port}`;
  const start = async (): Promise<void> => {
    if (child) return;
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence], { stdio: 'ignore' });
    child = c;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, password: opts.requirePass });
      r.on('error', () => undefined);
      try {
        await r.connect();
        await r.ping();
        r.disconnect();
        return;
      } catch {
        r.disconnect();
        if (Date.now() > deadline || c.exitCode !== null) throw new Error(`redis-server on ${port} did not start`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  process.once('exit', () => child?.kill('SIGKILL'));
  await start();
  return { url, port, start, stop };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Pulls `repo:ref` through a wharf (manifest, then config and layers) and checks every digest served. */
export async function pullImage(w: { url: string }, repo: string, ref: string, img: TestImage): Promise<void> {
  const m = await request(`${w.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: manifestAccept } });
  assert.equal(m.status, 200, `${repo}:${ref} manifest: ${describeResponse(m)}`);
  assert.equal(sha256(m.body), img.manifestDigest);
  for (const d of [img.config, ...img.layers]) {
    const res = await request(`${w.url}/v2/${repo}/blobs/${d.digest}`);
    assert.equal(res.status, 200, `${repo} blob: ${describeResponse(res)}`);
    assert.equal(sha256(res.body), d.digest);
  }
}
