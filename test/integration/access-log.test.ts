/**
 * Issue 17 item 10: the access log answers "who pulled X" on its own. Each request line carries the
 * canonical repository, the reference asked for, the digest served, the authenticated user (never a
 * secret), the upstream and the cache outcome. Against a real Distribution upstream, with htpasswd users.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicHeader, manifestAccept, request } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import { htpasswdFile, startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

const ALICE_PASSWORD = `alice-${randomBytes(8).toString('hex')}`;
const alice = { authorization: basicHeader({ username: 'alice', password: ALICE_PASSWORD }) };

interface LogLine {
  msg?: string;
  reqId?: string;
  method?: string;
  route?: string;
  status?: number;
  repo?: string;
  ref?: string;
  digest?: string;
  user?: string;
  upstream?: string;
  cache?: string;
}

describe('access log: who pulled what', () => {
  let upstream: RegistryProcess;
  let dir: TempDir;
  let w: WharfProcess;
  const img = makeImage({ layers: 1 });
  const local = makeImage({ layers: 1 });

  before(async () => {
    upstream = await startRegistry();
    dir = await tempDir('wharf-access-log-');
    await pushImage(upstream.url, 'acme/tool', '1.0', img);
    const htpasswd = join(dir.path, 'htpasswd');
    await htpasswdFile(htpasswd, { alice: ALICE_PASSWORD });
    w = await startWharf({
      config: {
        upstreams: [{ name: 'hub', url: upstream.url, default: true, aliases: ['hub.test'] }],
        auth: { htpasswd, anonymousPull: false, rules: [{ repositories: ['**'], users: ['alice'], actions: ['pull', 'push'] }] },
      },
    });
  });
  after(async () => {
    await w?.stop();
    await upstream?.stop();
    await dir?.cleanup();
  });

  /** The request lines logged for requests whose X-Request-Id is `id`. */
  async function linesOf(id: string): Promise<LogLine[]> {
    // The line is written when the response has gone out, a moment after the client has it.
    for (let i = 0; i < 100; i++) {
      const found = w
        .logs()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine)
        .filter((l) => l.msg === 'request' && l.reqId === id);
      if (found.length > 0) return found;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.fail(`no request line for ${id}\n${w.logs().slice(-2000)}`);
  }
  async function get(path: string, id: string, headers: Record<string, string> = alice, method = 'GET'): Promise<LogLine> {
    const res = await request(`${w.url}${path}`, { method, headers: { accept: manifestAccept, 'x-request-id': id, ...headers } });
    assert.ok(res.status < 500, describeResponse(res));
    const [line] = await linesOf(id);
    return line!;
  }

  it('a mirrored pull logs repository, reference, digest, user, upstream and outcome', async () => {
    // Three spellings of one repository: the log names its canonical key every time.
    const byTag = await get('/v2/acme/tool/manifests/1.0', 'pull-tag');
    assert.equal(byTag.status, 200);
    assert.deepEqual(
      { repo: byTag.repo, ref: byTag.ref, digest: byTag.digest, user: byTag.user, upstream: byTag.upstream, cache: byTag.cache },
      { repo: 'hub/acme/tool', ref: '1.0', digest: img.manifestDigest, user: 'alice', upstream: 'hub', cache: 'miss' },
    );
    const again = await get('/v2/hub.test/acme/tool/manifests/1.0', 'pull-tag-again', alice, 'HEAD');
    assert.deepEqual([again.repo, again.ref, again.digest, again.cache, again.method], ['hub/acme/tool', '1.0', img.manifestDigest, 'hit', 'HEAD']);
    const blob = await get(`/v2/acme/tool/blobs/${img.layers[0]!.digest}?ns=hub.test`, 'pull-blob');
    assert.equal(blob.status, 200);
    assert.deepEqual([blob.repo, blob.ref, blob.digest, blob.user, blob.upstream], ['hub/acme/tool', img.layers[0]!.digest, img.layers[0]!.digest, 'alice', 'hub']);
  });

  it('a refused request still says who asked for what; a wrong password names no user and logs no secret', async () => {
    const anon = await get('/v2/acme/tool/manifests/1.0', 'anon', {});
    assert.deepEqual([anon.status, anon.repo, anon.ref, anon.user], [401, 'hub/acme/tool', '1.0', undefined]);
    const wrong = await get('/v2/acme/tool/manifests/1.0', 'wrong', { authorization: basicHeader({ username: 'alice', password: `${ALICE_PASSWORD}x` }) });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.user, undefined);
    assert.ok(!w.logs().includes(ALICE_PASSWORD), 'the password never reaches the log');
  });

  it('a push logs the pusher and the digest stored', async () => {
    await pushImage(w.url, 'team/app', '2', local, { username: 'alice', password: ALICE_PASSWORD });
    const putLine = (): LogLine | undefined =>
      w
        .logs()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine)
        .find((l) => l.msg === 'request' && l.method === 'PUT' && l.route === 'manifest' && l.ref === '2');
    for (let i = 0; i < 100 && putLine() === undefined; i++) await new Promise((r) => setTimeout(r, 50));
    const put = putLine();
    assert.ok(put, `no manifest PUT line:\n${w.logs().slice(-3000)}`);
    assert.equal(put.status, 201);
    assert.equal(put.repo, 'hub/team/app');
    assert.equal(put.digest, local.manifestDigest);
    assert.equal(put.user, 'alice');
  });
});
