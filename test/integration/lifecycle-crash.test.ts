/**
 * Crash safety of a wharf process: SIGKILL while a blob is half fetched, then a restart on the same data
 * directory; upload sessions survive a SIGKILL; an unusable data directory is one clear line at start.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';
import { onS3, openMultipartUploads, storedBlobs } from '../helpers/test-storage.js';
import { describeResponse, filesUnder, startWharf, type WharfProcess } from '../helpers/wharf.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * A pass-through proxy in front of the real registry that, when armed, sends one blob's headers and its
 * first `afterBytes` bytes and then holds the connection open without sending more: an upstream that
 * stalls mid-body, so the test can kill wharf at a moment it chooses.
 */
interface StallProxy {
  url: string;
  arm(path: string, afterBytes: number): void;
  disarm(): void;
  /** GETs of a path so far */
  gets(path: string): number;
  stop(): Promise<void>;
}

async function startStallProxy(target: string): Promise<StallProxy> {
  const up = new URL(target);
  let armed: { path: string; afterBytes: number } | undefined;
  const held = new Set<ServerResponse>();
  const seen: string[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET') seen.push(path);
    const stall = armed !== undefined && req.method === 'GET' && path === armed.path ? armed.afterBytes : undefined;
    const out = httpRequest({ hostname: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers, agent: false });
    req.pipe(out);
    out.once('error', () => res.destroy());
    out.once('response', (ures) => {
      res.writeHead(ures.statusCode ?? 502, ures.headers as IncomingHttpHeaders);
      if (stall === undefined) {
        ures.pipe(res);
        return;
      }
      held.add(res);
      let sent = 0;
      ures.on('data', (chunk: Buffer) => {
        if (sent >= stall) return;
        const part = chunk.subarray(0, stall - sent);
        sent += part.length;
        res.write(part);
        if (sent >= stall) ures.pause();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    arm: (path, afterBytes) => void (armed = { path, afterBytes }),
    disarm: () => void (armed = undefined),
    gets: (path) => seen.filter((p) => p === path).length,
    async stop() {
      for (const r of held) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Starts a GET and resolves once `atLeast` body bytes arrived; the connection is left to die with wharf. */
function receiveSome(url: string, atLeast: number): Promise<{ status: number; received: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let received = 0;
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (received >= atLeast) resolve({ status: res.statusCode ?? 0, received });
      });
      res.on('error', () => undefined);
      res.on('aborted', () => undefined);
    });
    req.on('error', (e) => reject(e));
    req.setTimeout(20_000, () => req.destroy(new Error(`no ${atLeast} bytes from ${url} within 20 s`)));
    req.end();
  });
}

describe('SIGKILL during a blob fetch, then restart on the same data directory', () => {
  let registry: RegistryProcess;
  let proxy: StallProxy;
  let w: WharfProcess;

  before(async () => {
    registry = await startRegistry();
    proxy = await startStallProxy(registry.url);
    w = await startWharf({ config: { upstreams: [{ name: 'hub', url: proxy.url, default: true }] } });
  });
  after(async () => {
    await w?.stop();
    await proxy?.stop();
    await registry?.stop();
  });

  it('keeps no partial blob, cleans tmp/ on start, and the next pull fetches again and verifies', async () => {
    // Past one 5 MiB part before the stall, so on S3 the download has a multipart upload under way.
    const img = makeImage({ layers: 1, layerSize: 6 * 1024 * 1024 });
    await pushImage(registry.url, 'acme/big', '1', img);
    const layer = img.layers[0]!;
    const path = `/v2/acme/big/blobs/${layer.digest}`;
    proxy.arm(path, 5.5 * 1024 * 1024);

    const got = await receiveSome(`${w.url}${path}`, 5.25 * 1024 * 1024);
    assert.equal(got.status, 200);
    // On S3 the first part goes up while the client reads: kill once the bucket has the upload under way.
    for (let i = 0; onS3 && i < 200 && (await openMultipartUploads(w.dataDir)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await w.kill();

    const leftovers = await filesUnder(join(w.dataDir, 'tmp'));
    assert.ok(leftovers.length >= 1, 'the killed fetch left its temp file behind (what the restart must clean)');
    assert.deepEqual(await storedBlobs(w.dataDir), [], 'nothing partial under blobs/');
    if (onS3) assert.equal((await openMultipartUploads(w.dataDir)).length, 1, 'the killed fetch left its multipart upload (what the restart must abort)');

    proxy.disarm();
    await w.restart();
    assert.deepEqual(await filesUnder(join(w.dataDir, 'tmp')), [], 'leftovers removed at start');
    assert.deepEqual(await openMultipartUploads(w.dataDir), [], 'the crashed multipart upload aborted at start');
    const before = proxy.gets(path);
    const res = await request(`${w.url}${path}`);
    assert.equal(res.status, 200, describeResponse(res));
    assert.equal(sha256(res.body), layer.digest);
    assert.equal(proxy.gets(path), before + 1, 'fetched from upstream again');
    const committed = `sha256/${layer.digest.slice(7, 9)}/${layer.digest.slice(7)}`;
    for (let i = 0; i < 50 && (await storedBlobs(w.dataDir)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await storedBlobs(w.dataDir), [committed], 'committed once complete');
  });

  it('an upload session survives a SIGKILL and completes after the restart', async () => {
    const data = Buffer.alloc(300 * 1024, 7);
    const digest = sha256(data);
    const post = await request(`${w.url}/v2/team/up/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(0) });
    assert.equal(post.status, 202, describeResponse(post));
    const location = new URL(post.headers.location!, w.url);
    const patch = await request(location.toString(), {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${100 * 1024 - 1}` },
      body: data.subarray(0, 100 * 1024),
    });
    assert.equal(patch.status, 202, describeResponse(patch));

    await w.kill();
    await w.restart();

    const next = new URL(patch.headers.location ?? location.toString(), w.url);
    const status = await request(next.toString());
    assert.equal(status.status, 204, `session still known after the restart: ${describeResponse(status)}`);
    assert.equal(status.headers.range, `0-${100 * 1024 - 1}`);
    next.searchParams.set('digest', digest);
    const put = await request(next.toString(), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${100 * 1024}-${data.length - 1}` },
      body: data.subarray(100 * 1024),
    });
    assert.equal(put.status, 201, describeResponse(put));
    const back = await request(`${w.url}/v2/team/up/blobs/${digest}`);
    assert.equal(sha256(back.body), digest);
  });
});

describe('an unusable data directory at start', () => {
  it('exits non-zero with one clear line, not a stack trace', async (t) => {
    const dir = await tempDir('wharf-badstart-');
    t.after(() => dir.cleanup());
    const file = join(dir.path, 'not-a-dir');
    await writeFile(file, 'x');
    const config = join(dir.path, 'wharf.yaml');
    await writeFile(config, 'upstreams: []\nlog: { level: silent }\n');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', config], {
      cwd: REPO_ROOT,
      env: { ...env, WHARF_DATA_DIR: file, WHARF_LISTEN: '127.0.0.1:0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.notEqual(code, 0, 'exit code');
    assert.notEqual(code, null, 'exited by itself');
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `one line on stderr, got:\n${stderr}`);
    assert.match(lines[0]!, /^wharf: data directory .*not-a-dir is not usable: .*not a directory/);
  });
});
