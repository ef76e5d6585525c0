/**
 * `wharf gc` against a running wharf through the admin API: the dry run lists exactly the garbage the test
 * made (unreferenced blobs, an expired upload session), and the real run removes that and nothing else.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { manifestAccept, request } from '../helpers/http.js';
import { blobsOf, makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { blobStored } from '../helpers/test-storage.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function wharfCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: REPO_ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const onDisk = (w: WharfProcess, d: string) => blobStored(w.dataDir, d);

let w: WharfProcess;
before(async () => {
  w = await startWharf({ config: { upstreams: [], uploads: { expiry: '1s' } } });
});
after(() => w?.stop());

it('gc --dry-run lists exactly the orphans; gc removes them and nothing else', async () => {
  const keep = makeImage({ layers: 2 });
  const orphan = makeImage({ layers: 2 });
  await pushImage(w.url, 'team/keep', '1', keep);
  await pushImage(w.url, 'team/orphan', '1', orphan);
  // Unlink everything of the orphan image: its manifest bytes, config and layers become unreferenced.
  const del = await request(`${w.url}/v2/team/orphan/manifests/${orphan.manifestDigest}`, { method: 'DELETE' });
  assert.equal(del.status, 202, describeResponse(del));
  for (const b of blobsOf(orphan)) {
    const r = await request(`${w.url}/v2/team/orphan/blobs/${b.digest}`, { method: 'DELETE' });
    assert.equal(r.status, 202, describeResponse(r));
  }
  const orphans = [orphan.manifestDigest, ...blobsOf(orphan).map((b) => b.digest)].sort();

  // An upload session left idle past uploads.expiry (1s).
  const post = await request(`${w.url}/v2/team/up/blobs/uploads/`, { method: 'POST', body: Buffer.alloc(0) });
  assert.equal(post.status, 202, describeResponse(post));
  const uploadUrl = new URL(post.headers.location!, w.url).toString();
  const uploadId = /uploads\/([^/?]+)/.exec(uploadUrl)![1]!;
  const patch = await request(uploadUrl, { method: 'PATCH', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(1000, 1) });
  assert.equal(patch.status, 202, describeResponse(patch));
  await new Promise((r) => setTimeout(r, 1500));

  const dry = await wharfCli(['gc', '--dry-run', '--grace', '1s', '--url', w.url]);
  assert.equal(dry.code, 0, dry.stderr);
  const listed = [...dry.stdout.matchAll(/^would remove blob (\S+) /gm)].map((m) => m[1]).sort();
  assert.deepEqual(listed, orphans, dry.stdout);
  assert.deepEqual([...dry.stdout.matchAll(/^would remove upload (\S+) in (\S+)/gm)].map((m) => [m[1], m[2]]), [[uploadId, 'team/up']], dry.stdout);
  assert.doesNotMatch(dry.stdout, /temp file \S/, 'the expired session owns its temp file: not listed twice');
  assert.match(dry.stdout, /^dry run: would remove 4 blobs, 1 expired upload, 0 temp files; would free /m);
  for (const d of orphans) assert.ok(await onDisk(w, d), `dry run removed nothing (${d})`);

  const real = await wharfCli(['gc', '--grace', '1s', '--url', w.url]);
  assert.equal(real.code, 0, real.stderr);
  assert.deepEqual([...real.stdout.matchAll(/^removed blob (\S+) /gm)].map((m) => m[1]).sort(), orphans, real.stdout);
  assert.match(real.stdout, /^removed upload \S+ in team\/up/m);
  const freed = /; freed (.+)$/m.exec(real.stdout);
  assert.ok(freed && freed[1] !== '0 B', real.stdout);
  for (const d of orphans) assert.equal(await onDisk(w, d), false, `${d} removed`);
  const gone = await request(uploadUrl);
  assert.equal(gone.status, 404, `expired upload gone: ${describeResponse(gone)}`);

  // Nothing else: the kept image is whole and served.
  for (const d of [keep.manifestDigest, ...blobsOf(keep).map((b) => b.digest)]) assert.ok(await onDisk(w, d), `${d} kept`);
  const m = await request(`${w.url}/v2/team/keep/manifests/1`, { headers: { accept: manifestAccept } });
  assert.deepEqual(m.body, keep.manifest);
  for (const b of blobsOf(keep)) assert.equal(sha256((await request(`${w.url}/v2/team/keep/blobs/${b.digest}`)).body), b.digest);

  const again = await wharfCli(['gc', '--grace', '1s', '--url', w.url]);
  assert.match(again.stdout, /^removed 0 blobs, 0 expired uploads, 0 temp files; freed 0 B$/m, 'a second run finds nothing');
});
