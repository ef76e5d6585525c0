/**
 * The offline commands (`wharf ls|gc|verify --data-dir`) on a wharf that keeps its blobs in object storage
 * (a real S3: OpenStack Swift's s3api): wharf's configuration (--config) says where the blobs are; gc removes
 * orphans from the bucket, verify quarantines a corrupted object there. The data directory's LOCK and the
 * bucket's sole-use claim keep a running wharf and an offline command from writing at once.
 */
import assert from 'node:assert/strict';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { manifestAccept, request } from '../helpers/http.js';
import { blobsOf, makeImage, pushImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startSwiftS3, type SwiftS3 } from '../helpers/swift-s3.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { wharfCli } from '../helpers/wharf-cli.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

const BUCKET = 'wharf-offline';
const PREFIX = 'off/';

let swift: SwiftS3;
let dirs: TempDir;
let config: Record<string, unknown>;
let configFile: string;
/** The secret through the environment, as an operator would pass it to both serve and the CLI. */
let secretEnv: Record<string, string>;
const running: WharfProcess[] = [];

before(async () => {
  swift = await startSwiftS3();
  await swift.createBucket(BUCKET);
  dirs = await tempDir('wharf-offline-s3-');
  config = {
    upstreams: [],
    storage: { s3: { endpoint: swift.endpoint, bucket: BUCKET, prefix: PREFIX, forcePathStyle: true, accessKeyId: swift.accessKeyId } },
  };
  configFile = join(dirs.path, 'wharf.yaml');
  await writeFile(configFile, stringify(config));
  secretEnv = { WHARF_STORAGE_S3_SECRET_ACCESS_KEY: swift.secretAccessKey };
});

after(async () => {
  for (const w of running) await w.stop();
  await swift?.stop();
  await dirs?.cleanup();
});

async function serve(dataDir: string): Promise<WharfProcess> {
  const w = await startWharf({ config, dataDir, env: secretEnv });
  running.push(w);
  return w;
}

function key(digest: string): string {
  return `${PREFIX}blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`;
}

async function inBucket(digest: string): Promise<boolean> {
  const c = swift.client();
  try {
    await c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key(digest) }));
    return true;
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw e;
  } finally {
    c.destroy();
  }
}

const everything = (img: TestImage): string[] => [img.manifestDigest, ...blobsOf(img).map((b) => b.digest)];

describe('offline commands on a wharf whose blobs are in S3', () => {
  const dataDir = () => join(dirs.path, 'd');
  const keep = makeImage({ layers: 2 });
  const orphan = makeImage({ layers: 2 });

  it('ls, gc and verify with --data-dir and --config work on the bucket', async () => {
    const w = await serve(dataDir());
    await pushImage(w.url, 'team/keep', '1', keep);
    await pushImage(w.url, 'team/orphan', '1', orphan);
    const del = await request(`${w.url}/v2/team/orphan/manifests/${orphan.manifestDigest}`, { method: 'DELETE' });
    assert.equal(del.status, 202, describeResponse(del));
    for (const b of blobsOf(orphan)) assert.equal((await request(`${w.url}/v2/team/orphan/blobs/${b.digest}`, { method: 'DELETE' })).status, 202);
    await w.stop();
    for (const d of [...everything(keep), ...everything(orphan)]) assert.ok(await inBucket(d), `${d} stored in the bucket`);

    const ls = await wharfCli(['ls', '--data-dir', dataDir(), '--config', configFile], secretEnv);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^team\/keep\s+local\s+1\s/m, ls.stdout);

    // Without the configuration the CLI cannot know the bucket: it says so instead of reading an empty blobs/.
    const blind = await wharfCli(['gc', '--data-dir', dataDir()]);
    assert.equal(blind.code, 1, blind.stdout);
    assert.match(blind.stderr, /expected blobs\/ in it .*storage\.s3.*--config/, blind.stderr);

    const gc = await wharfCli(['gc', '--data-dir', dataDir(), '--config', configFile], secretEnv);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual([...gc.stdout.matchAll(/^removed blob (\S+) /gm)].map((m) => m[1]).sort(), everything(orphan).sort(), gc.stdout);
    for (const d of everything(orphan)) assert.equal(await inBucket(d), false, `${d} removed from the bucket`);
    for (const d of everything(keep)) assert.ok(await inBucket(d), `${d} kept`);

    // A corrupted object in the bucket: verify finds it, moves it to quarantine/ and says so with exit code 1.
    const layer = keep.layers[0]!;
    const c = swift.client();
    try {
      await c.send(new PutObjectCommand({ Bucket: BUCKET, Key: key(layer.digest), Body: Buffer.alloc(layer.bytes.length, 0) }));
    } finally {
      c.destroy();
    }
    const v = await wharfCli(['verify', '--data-dir', dataDir(), '--config', configFile], secretEnv);
    assert.equal(v.code, 1, `${v.stdout}${v.stderr}`);
    assert.match(v.stdout, new RegExp(`^CORRUPT ${layer.digest}: `, 'm'), v.stdout);
    assert.equal(await inBucket(layer.digest), false, 'out of blobs/');
    const q = swift.client();
    try {
      const listed = await q.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}quarantine/` }));
      assert.deepEqual(
        (listed.Contents ?? []).map((o) => o.Key),
        [`${PREFIX}quarantine/sha256-${layer.digest.slice(7)}`],
      );
    } finally {
      q.destroy();
    }

    // wharf serves what the offline commands left: the kept image, minus the quarantined layer.
    const again = await serve(dataDir());
    const m = await request(`${again.url}/v2/team/keep/manifests/1`, { headers: { accept: manifestAccept } });
    assert.equal(m.status, 200, describeResponse(m));
    assert.equal(sha256((await request(`${again.url}/v2/team/keep/blobs/${keep.layers[1]!.digest}`)).body), keep.layers[1]!.digest);
    assert.equal((await request(`${again.url}/v2/team/keep/blobs/${layer.digest}`)).status, 404, 'the corrupted layer was unlinked');
    await again.stop();
  });

  it('a running wharf and an offline command never both write the bucket', async () => {
    // A second data directory that once served this bucket (then stopped, releasing its claim).
    const other = join(dirs.path, 'e');
    await (await serve(other)).stop();

    const w = await serve(dataDir());
    const keptBefore = await Promise.all(everything(keep).map(inBucket));
    // Its own data directory: the LOCK refuses.
    const same = await wharfCli(['gc', '--data-dir', dataDir(), '--config', configFile], secretEnv);
    assert.equal(same.code, 1, same.stdout);
    assert.match(same.stderr, /in use by a running wharf/, same.stderr);
    // Another data directory on the same bucket and prefix: the bucket's claim refuses.
    const elsewhere = await wharfCli(['gc', '--data-dir', other, '--config', configFile], secretEnv);
    assert.equal(elsewhere.code, 1, elsewhere.stdout);
    assert.match(elsewhere.stderr, /another wharf without redis uses this bucket and prefix.*--url/, elsewhere.stderr);
    assert.deepEqual(await Promise.all(everything(keep).map(inBucket)), keptBefore, 'nothing removed by a refused gc');
    await w.stop();

    // With that wharf gone the offline command runs, and gives the claim back when done: a wharf on another
    // data directory starts at once (a claim left behind would refuse it until it went stale, a minute later).
    const ls = await wharfCli(['ls', '--data-dir', other, '--config', configFile], secretEnv);
    assert.equal(ls.code, 0, ls.stderr);
    const next = await serve(dataDir());
    assert.equal((await request(`${next.url}/v2/`)).status, 200);
    await next.stop();
  });
});
