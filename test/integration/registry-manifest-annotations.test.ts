/**
 * OCI annotations are string → string. A manifest whose annotations are anything else (deeply nested objects,
 * numbers, arrays; at the manifest, index or descriptor level) or whose JSON nests absurdly deep is refused
 * with 400 MANIFEST_INVALID before anything is stored; and a data directory that already holds such a
 * manifest (written by an older wharf) does not break gc, the admin listing or offline `wharf ls`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { manifestAccept, request } from '../helpers/http.js';
import { makeImage, makeIndex, pushImage, sha256 } from '../helpers/oci-image.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { blobFile, describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** `{"a":{"a":…"x"…}}`, `depth` objects deep, built as text (the test process never holds it as an object). */
function nested(depth: number): string {
  return `${'{"a":'.repeat(depth)}"x"${'}'.repeat(depth)}`;
}

function wharfCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: REPO_ROOT, env, timeout: 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const img = makeImage({ layers: 1 });
const child = makeImage({ layers: 1 });

/** The image's manifest with `annotations` (raw JSON text) at the top level or on its layer descriptor. */
function imageManifest(annotations: string, where: 'manifest' | 'layer' | 'config'): Buffer {
  const desc = (b: { mediaType: string; digest: string; bytes: Buffer }, ann: boolean): string =>
    `{"mediaType":"${b.mediaType}","digest":"${b.digest}","size":${b.bytes.length}${ann ? `,"annotations":${annotations}` : ''}}`;
  return Buffer.from(
    `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${desc(img.config, where === 'config')},` +
      `"layers":[${desc(img.layers[0]!, where === 'layer')}]${where === 'manifest' ? `,"annotations":${annotations}` : ''}}`,
  );
}

function indexManifest(annotations: string, where: 'index' | 'entry'): Buffer {
  const entry = `{"mediaType":"${OCI_MANIFEST}","digest":"${child.manifestDigest}","size":${child.manifest.length},"platform":{"os":"linux","architecture":"amd64"}${where === 'entry' ? `,"annotations":${annotations}` : ''}}`;
  return Buffer.from(`{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[${entry}]${where === 'index' ? `,"annotations":${annotations}` : ''}}`);
}

describe('manifest annotations', () => {
  let w: WharfProcess;
  before(async () => {
    w = await startWharf({ config: { upstreams: [] } });
    await pushImage(w.url, 'team/app', 'ok', img);
    await pushImage(w.url, 'team/app', 'child', child);
  });
  after(() => w?.stop());

  const cases: Array<[string, Buffer, string]> = [
    ['annotations nested 1,925 objects deep', imageManifest(nested(1925), 'manifest'), OCI_MANIFEST],
    ['annotations nested 200,000 objects deep', imageManifest(nested(200_000), 'manifest'), OCI_MANIFEST],
    ['an annotation value that is an object', imageManifest('{"org.example":{"k":"v"}}', 'manifest'), OCI_MANIFEST],
    ['an annotation value that is a number', imageManifest('{"org.example":1}', 'manifest'), OCI_MANIFEST],
    ['annotations that are an array', imageManifest('["a","b"]', 'manifest'), OCI_MANIFEST],
    ['annotations that are a string', imageManifest('"a"', 'manifest'), OCI_MANIFEST],
    ['a layer descriptor with nested annotations', imageManifest(nested(1925), 'layer'), OCI_MANIFEST],
    ['a config descriptor with a null annotation', imageManifest('{"org.example":null}', 'config'), OCI_MANIFEST],
    ['an index with nested annotations', indexManifest(nested(1925), 'index'), OCI_INDEX],
    ['an index entry with a boolean annotation', indexManifest('{"org.example":true}', 'entry'), OCI_INDEX],
    ['a manifest nested 200,000 arrays deep elsewhere', Buffer.from(`{"schemaVersion":2,"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}`), OCI_MANIFEST],
  ];
  for (const [what, bytes, type] of cases) {
    it(`refuses ${what} with 400 MANIFEST_INVALID and stores nothing`, async () => {
      const res = await request(`${w.url}/v2/team/app/manifests/bad`, { method: 'PUT', headers: { 'content-type': type }, body: bytes, timeoutMs: 60_000 });
      assert.equal(res.status, 400, describeResponse(res));
      assert.deepEqual(errorCodes(res), ['MANIFEST_INVALID'], describeResponse(res));
      const byDigest = await request(`${w.url}/v2/team/app/manifests/${sha256(bytes)}`, { headers: { accept: manifestAccept } });
      assert.equal(byDigest.status, 404, describeResponse(byDigest));
      const tags = await request(`${w.url}/v2/team/app/tags/list`);
      assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['child', 'ok']);
    });
  }

  it('string annotations everywhere are accepted', async () => {
    const ok = imageManifest('{"org.opencontainers.image.title":"t","empty":""}', 'manifest');
    const res = await request(`${w.url}/v2/team/app/manifests/annotated`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: ok });
    assert.equal(res.status, 201, describeResponse(res));
    const idx = makeIndex([child]);
    await pushImage(w.url, 'team/app', 'index', idx);
  });

  it('gc and the admin listing still answer', async () => {
    const gc = await request(`${w.url}/_wharf/admin/gc?dryRun=true`, { method: 'POST', timeoutMs: 60_000 });
    assert.equal(gc.status, 200, describeResponse(gc));
    const repos = await request(`${w.url}/_wharf/admin/repositories`, { timeoutMs: 60_000 });
    assert.equal(repos.status, 200, describeResponse(repos));
  });
});

describe('a data directory that already holds a manifest with deeply nested annotations', () => {
  let data: TempDir;
  let w: WharfProcess | undefined;
  before(async () => {
    data = await tempDir('wharf-annotations-');
  });
  after(async () => {
    await w?.stop();
    await data?.cleanup();
  });

  it('gc, the admin listing, offline ls and pulls of other images keep working', async () => {
    const dataDir = join(data.path, 'data');
    w = await startWharf({ dataDir, config: { upstreams: [] } });
    await pushImage(w.url, 'team/good', '1', img);
    await w.stop();

    // What an older wharf wrote when it accepted such a push: the manifest bytes, and a link whose
    // annotations are the parsed (nested) object, with a tag on it.
    for (const depth of [1925, 20_000]) {
      const bytes = imageManifest(nested(depth), 'manifest');
      const digest = sha256(bytes);
      await mkdir(dirname(blobFile(dataDir, digest)), { recursive: true });
      await writeFile(blobFile(dataDir, digest), bytes);
      const now = Date.now();
      const lines = [
        { op: 'repo', r: `team/deep${depth}`, v: { local: true, mirrored: false } },
        `{"op":"link","r":"team/deep${depth}","d":"${digest}","v":{"kind":"manifest","size":${bytes.length},"origin":"local","mediaType":"${OCI_MANIFEST}","artifactType":"${img.config.mediaType}","annotations":${nested(depth)},"refs":["${img.config.digest}","${img.layers[0]!.digest}"],"linkedAt":${now}}}`,
        { op: 'link', r: `team/deep${depth}`, d: img.config.digest, v: { kind: 'blob', size: img.config.bytes.length, origin: 'local', linkedAt: now } },
        { op: 'link', r: `team/deep${depth}`, d: img.layers[0]!.digest, v: { kind: 'blob', size: img.layers[0]!.bytes.length, origin: 'local', linkedAt: now } },
        { op: 'tag', r: `team/deep${depth}`, t: 'v1', v: { digest, mediaType: OCI_MANIFEST, size: bytes.length, checkedAt: now, origin: 'local' } },
      ];
      await appendFile(join(dataDir, 'meta', 'journal.log'), lines.map((l) => `${typeof l === 'string' ? l : JSON.stringify(l)}\n`).join(''));
    }

    const offline = await wharfCli(['ls', '--data-dir', dataDir]);
    assert.equal(offline.code, 0, `offline ls: ${offline.stderr}`);
    assert.match(offline.stdout, /team\/good/);

    w = await startWharf({ dataDir, config: { upstreams: [] } });
    const gc = await request(`${w.url}/_wharf/admin/gc?dryRun=true`, { method: 'POST', timeoutMs: 60_000 });
    assert.equal(gc.status, 200, describeResponse(gc));
    const repos = await request(`${w.url}/_wharf/admin/repositories`, { timeoutMs: 60_000 });
    assert.equal(repos.status, 200, describeResponse(repos));
    const names = (JSON.parse(repos.body.toString()) as { repositories: Array<{ name: string }> }).repositories.map((r) => r.name);
    for (const n of ['team/good', 'team/deep1925', 'team/deep20000']) assert.ok(names.includes(n), `${n} listed in ${names.join(', ')}`);
    const m = await request(`${w.url}/v2/team/good/manifests/1`, { headers: { accept: manifestAccept } });
    assert.equal(m.status, 200, describeResponse(m));
    const referrers = await request(`${w.url}/v2/team/deep1925/referrers/${img.config.digest}`);
    assert.equal(referrers.status, 200, describeResponse(referrers));
    await w.stop();

    const again = await wharfCli(['ls', '--data-dir', dataDir]);
    assert.equal(again.code, 0, `offline ls after a restart: ${again.stderr}`);
    assert.match(again.stdout, /team\/deep1925/);
  });
});
