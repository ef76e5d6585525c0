/**
 * The operator commands against a running wharf: ls and stats (through the web UI's JSON API, the figures
 * the UI shows), purge and verify (the admin API, with its credentials), and the offline mode's lock on the
 * data directory.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { basicHeader, manifestAccept, request } from '../helpers/http.js';
import { blobsOf, makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { wharfCli } from '../helpers/wharf-cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { blobStored, offlineArgs, overwriteBlob, quarantined } from '../helpers/test-storage.js';
import { describeResponse, startWharf, waitIdle, type WharfProcess } from '../helpers/wharf.js';

const ADMIN = { username: 'ops', password: 'op-secret' };
const AS_ADMIN = { WHARF_ADMIN_USERNAME: ADMIN.username, WHARF_ADMIN_PASSWORD: ADMIN.password };

let registry: RegistryProcess;
let proxy: FaultProxy;
let data: TempDir;
let w: WharfProcess;

before(async () => {
  registry = await startRegistry();
  proxy = await startFaultProxy(registry.url);
  data = await tempDir('wharf-cli-admin-');
  w = await startWharf({
    dataDir: data.path,
    // Without the web pages: ls and stats read the JSON API, which is served either way.
    config: { upstreams: [{ name: 'hub', url: proxy.url, default: true, tagFreshness: '10m' }], admin: ADMIN, ui: { enabled: false } },
  });
});
after(async () => {
  await w?.stop();
  await proxy?.stop();
  await registry?.stop();
  await data?.cleanup();
});

const onDisk = (d: string) => blobStored(data.path, d);

async function pull(repo: string, tag: string, img: TestImage): Promise<void> {
  const m = await request(`${w.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: manifestAccept } });
  assert.equal(m.status, 200, describeResponse(m));
  for (const b of blobsOf(img)) {
    const res = await request(`${w.url}/v2/${repo}/blobs/${b.digest}`);
    assert.equal(res.status, 200, describeResponse(res));
    assert.equal(sha256(res.body), b.digest);
  }
  await waitIdle(w);
}

describe('operator commands through the admin API', () => {
  const mirrored = makeImage({ layers: 2 });
  const other = makeImage({ layers: 1 });
  const local = makeImage({ layers: 1 });

  before(async () => {
    await pushImage(registry.url, 'acme/a', '1', mirrored);
    await pushImage(registry.url, 'acme/b', '1', other);
    proxy.inject({ match: { method: 'GET', path: '/v2/acme/a/manifests/1' }, times: 1, action: { kind: 'headers', headers: { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' } } });
    await pull('acme/a', '1', mirrored);
    await pull('acme/b', '1', other);
    await pushImage(w.url, 'team/l', '1', local);
    // ls and stats read the UI's snapshot of the metadata (a few seconds old at most): wait (bounded) for the push.
    for (let i = 0; ; i++) {
      const r = await request(`${w.url}/_wharf/api/repositories`);
      if (r.status === 200 && (JSON.parse(r.body.toString('utf8')) as { total: number }).total === 3) break;
      if (i >= 300) throw new Error(`the repositories never showed in the list: ${describeResponse(r)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  });

  it('the admin API needs the configured credentials', async () => {
    const res = await request(`${w.url}/_wharf/admin/stats`);
    assert.equal(res.status, 401);
    assert.match(res.headers['www-authenticate'] ?? '', /^Basic /);
    const wrong = await request(`${w.url}/_wharf/admin/stats`, { headers: { authorization: basicHeader({ username: 'ops', password: 'nope' }) } });
    assert.equal(wrong.status, 401);
    const cli = await wharfCli(['verify', '--url', w.url]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /^wharf: admin API at .* needs credentials: --username\/--password or WHARF_ADMIN_USERNAME\/WHARF_ADMIN_PASSWORD$/m);
    const flags = await wharfCli(['verify', '--url', w.url, '--username', ADMIN.username, '--password', ADMIN.password]);
    assert.equal(flags.code, 0, flags.stderr);
    const ls = await wharfCli(['ls', '--url', w.url]);
    assert.equal(ls.code, 0, `ls reads the JSON API, which on a registry without auth needs no credentials: ${ls.stderr}`);
    assert.equal((await request(`${w.url}/`)).status, 404, 'ui.enabled: false serves no pages');
  });

  it('ls lists local and mirrored repositories; ls REPO shows tags and digests', async () => {
    const all = await wharfCli(['ls', '--url', w.url], AS_ADMIN);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^REPOSITORY\s+KIND\s+TAGS\s+SIZE\s+LAST ACCESS$/m);
    assert.match(all.stdout, /^acme\/a\s+mirrored\s+1\s+\S+ \S+\s+\d{4}-\d\d-\d\dT/m);
    assert.match(all.stdout, /^team\/l\s+local\s+1\s/m);
    const one = await wharfCli(['ls', 'acme/a', '--url', w.url], AS_ADMIN);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, new RegExp(`^\\s+1\\s+${mirrored.manifestDigest}\\s+upstream\\s`, 'm'));
    const missing = await wharfCli(['ls', 'acme/nothing', '--url', w.url], AS_ADMIN);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NAME_UNKNOWN/);
  });

  it('stats shows the cache size, hit ratio, bytes saved and rate-limit headroom', async () => {
    await pull('acme/a', '1', mirrored); // hits
    const s = await wharfCli(['stats', '--url', w.url], AS_ADMIN);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^cache: mirrored \S+ \S+ in \d+ blobs \(no size limit\)$/m);
    assert.match(s.stdout, /^hit ratio: \d+\.\d% \(\d+ of \d+ requests spared the upstream\)$/m);
    assert.match(s.stdout, /^upstream spared: \S+ \S+ \(bandwidth saved\); \S+ \S+ sent by the upstream for misses$/m);
    assert.match(s.stdout, /^upstream hub: 76 of 100 pulls left per 6h \(76% headroom\)$/m);
    assert.match(s.stdout, /^repositories: 3 \(1 local, 2 mirrored\)/m);
  });

  it('purge drops a mirrored image (refetched on the next pull) and refuses a local one', async () => {
    const p = await wharfCli(['purge', 'acme/a:1', '--url', w.url], AS_ADMIN);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /^purged acme\/a:1 \(hub\/acme\/a\)$/m);
    for (const b of blobsOf(mirrored)) assert.equal(await onDisk(b.digest), false, `${b.digest} removed`);
    assert.equal(await onDisk(mirrored.manifestDigest), false, 'manifest removed');
    for (const b of blobsOf(other)) assert.ok(await onDisk(b.digest), 'another image is untouched');

    const mark = proxy.count({ method: 'GET', path: `/v2/acme/a/blobs/${mirrored.layers[0]!.digest}` });
    await pull('acme/a', '1', mirrored);
    assert.equal(proxy.count({ method: 'GET', path: `/v2/acme/a/blobs/${mirrored.layers[0]!.digest}` }), mark + 1, 'fetched again');

    const refused = await wharfCli(['purge', 'team/l:1', '--url', w.url], AS_ADMIN);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /DENIED: team\/l:1 was pushed here \(local\)/);
    assert.ok(await onDisk(local.layers[0]!.digest), 'local content kept');
  });

  it('verify quarantines a corrupted blob, which is then fetched again', async () => {
    const layer = other.layers[0]!;
    await overwriteBlob(data.path, layer.digest, Buffer.alloc(layer.bytes.length, 0));
    const v = await wharfCli(['verify', '--url', w.url], AS_ADMIN);
    assert.equal(v.code, 1, `exit 1 when a mismatch was found\n${v.stdout}${v.stderr}`);
    assert.match(v.stdout, new RegExp(`^CORRUPT ${layer.digest}: content hashes to sha256:\\w+ .*moved to quarantine/; unlinked from hub/acme/b$`, 'm'));
    assert.match(v.stdout, /^verified \d+ blobs \(.*\): 1 did not match$/m);
    assert.equal(await onDisk(layer.digest), false, 'out of blobs/');
    assert.ok(await quarantined(data.path, layer.digest), 'moved to quarantine/');

    const res = await request(`${w.url}/v2/acme/b/blobs/${layer.digest}`);
    assert.equal(sha256(res.body), layer.digest, 'served correctly again (from upstream)');
    const clean = await wharfCli(['verify', '--url', w.url], AS_ADMIN);
    assert.equal(clean.code, 0, clean.stdout);
    assert.match(clean.stdout, /: all match$/m);
  });

  it('offline mode refuses a data directory in use and works once wharf is stopped', async () => {
    const storage = await offlineArgs(data.path);
    const busy = await wharfCli(['ls', '--data-dir', data.path, ...storage]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /^wharf: data directory .* is in use by a running wharf \(pid \d+\); run the command through it with --url/m);
    await w.stop();
    const ls = await wharfCli(['ls', '--data-dir', data.path, ...storage]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^hub\/acme\/b\s+mirrored/m);
    const v = await wharfCli(['verify', '--data-dir', data.path, ...storage]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const gc = await wharfCli(['gc', '--dry-run', '--data-dir', data.path, ...storage]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /^dry run: would remove /m);
  });
});
