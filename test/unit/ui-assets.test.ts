import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { it } from 'node:test';
import Koa from 'koa';
import { UI_CSP, uiAssets } from '../../src/http/ui-assets.js';
import { request } from '../helpers/http.js';
import { tempDir } from '../helpers/tmp.js';

async function serve(dir: string | undefined, warn: string[]) {
  const app = new Koa();
  const logger = { debug() {}, info() {}, warn: (_o: object, m?: string) => void warn.push(m ?? ''), error() {}, child: () => logger };
  app.use(uiAssets(dir, logger));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise((r) => server.close(r)) };
}

it('without a build: a log line, and / is a 404 page that says how to build', async () => {
  const dir = await tempDir('wharf-ui-assets-');
  const warn: string[] = [];
  const s = await serve(join(dir.path, 'nothing'), warn);
  try {
    assert.match(warn.join('\n'), /web UI not built.*make build/);
    const r = await request(`${s.url}/`);
    assert.equal(r.status, 404);
    assert.match(r.body.toString(), /make build/);
    assert.equal(r.headers['content-security-policy'], UI_CSP);
  } finally {
    await s.close();
    await dir.cleanup();
  }
});

it('serves hashed assets by exact raw path only, cached for a year', async () => {
  const dir = await tempDir('wharf-ui-assets-');
  await mkdir(join(dir.path, 'assets'));
  await writeFile(join(dir.path, 'index.html'), '<!doctype html><title>x</title>');
  await writeFile(join(dir.path, 'assets', 'main.ABCDEF12.js'), 'console.log(1)');
  const s = await serve(dir.path, []);
  try {
    const ok = await request(`${s.url}/assets/main.ABCDEF12.js`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['cache-control'], 'public, max-age=31536000, immutable');
    for (const p of ['/Assets/main.ABCDEF12.js', '/assets//main.ABCDEF12.js', '/assets/main.ABCDEF12.js/']) {
      assert.equal((await request(`${s.url}${p}`)).status, 404, p);
    }
    const index = await request(`${s.url}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers['cache-control'], 'no-cache');
  } finally {
    await s.close();
    await dir.cleanup();
  }
});
