/**
 * Secrets never appear in logs, error bodies or metrics (issue 7). wharf runs at log level debug with
 * upstream credentials (inline, from a passwordFile and from the environment) against a real token-auth
 * Distribution and a real Basic-auth one, pulls through both, fails against both with wrong credentials,
 * follows a redirect to a refused host whose URL carries a signature, and receives client requests
 * carrying Authorization headers and token query parameters. Every secret string that went over the
 * wire (passwords, their Basic encodings, the bearer tokens the upstream was sent) is then searched for
 * in wharf's output, in every answer it gave, and in /metrics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import {
  getBlob,
  getManifest,
  MIRROR_USER,
  pullAndVerify,
  PUSHER,
  startBasicUpstream,
  startHubUpstream,
  startMirror,
  startTrap,
  type MirrorUpstream,
  type Trap,
} from '../helpers/mirror.js';
import { makeImage } from '../helpers/oci-image.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { htpasswdFile } from '../helpers/registry.js';
import { rawRequest, type WharfProcess } from '../helpers/wharf.js';

const unique = (what: string): string => `${what}-${randomBytes(6).toString('hex')}`;
const basic = (user: string, pass: string): string => Buffer.from(`${user}:${pass}`).toString('base64');

const WRONG_HUB_PASSWORD = unique('wrong-hub-pass');
const WRONG_BASIC_PASSWORD = unique('wrong-basic-pass');
const CLIENT_PASSWORD = unique('client-pass');
/** alice's real password (htpasswd) and a static token for CI: wharf's own client credentials */
const ALICE_PASSWORD = unique('alice-pass');
const STATIC_TOKEN = unique('static-token');
const CLIENT_TOKEN = unique('client-bearer');
const QUERY_TOKEN = unique('query-token');
const SIGNATURE = unique('sig');

let hub: MirrorUpstream;
let up: MirrorUpstream;
let trap: Trap;
let dir: TempDir;
let w: WharfProcess;
const hubImage = makeImage({ layers: 1 });
const basicImage = makeImage({ layers: 1 });
/** pushed upstream but never pulled, so its blob is a miss that goes upstream */
const redirected = makeImage({ layers: 1 });
/** Every answer wharf gave in this file, to search for secrets. */
const answers: Array<HttpResponse & { issuesTokens?: boolean }> = [];
/** tokens wharf itself issued to clients */
const issuedTokens: string[] = [];
/** `issuesTokens`: an answer of wharf's /token endpoint, which carries a JWT by design. */
const keep = (r: HttpResponse, issuesTokens = false): HttpResponse => (answers.push({ ...r, issuesTokens }), r);

before(async () => {
  [hub, up, trap, dir] = await Promise.all([startHubUpstream(), startBasicUpstream(), startTrap(), tempDir('wharf-secrets-')]);
  await hub.push('library/sec', '1', hubImage);
  await up.push('team/app', '1', basicImage);
  await up.push('team/other', '1', redirected);
  const passwordFile = join(dir.path, 'hub-password');
  await writeFile(passwordFile, `${PUSHER.password}\n`);
  const htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { alice: ALICE_PASSWORD });
  w = await startMirror(
    [
      // token auth with a password from a file
      hub.config({ credentials: { username: PUSHER.username, passwordFile } }),
      // Basic auth with an inline password (upstream config from the helper)
      up.config(),
      // the same registries straight (not through the counting proxy), with wrong passwords
      { name: 'badhub', url: hub.registry.url, aliases: ['badhub.test'], credentials: { username: PUSHER.username, password: WRONG_HUB_PASSWORD } },
      { name: 'badbasic', url: up.registry.url, aliases: ['badbasic.test'] },
    ],
    {
      log: { level: 'debug' },
      auth: {
        htpasswd,
        tokens: [{ user: 'ci', token: STATIC_TOKEN }],
        anonymousPull: true,
        rules: [{ repositories: ['local/*'], users: ['alice', 'ci'], actions: ['pull', 'push'] }],
      },
    },
    // a password from the environment
    { env: { WHARF_UPSTREAMS_3_CREDENTIALS_USERNAME: MIRROR_USER.username, WHARF_UPSTREAMS_3_CREDENTIALS_PASSWORD: WRONG_BASIC_PASSWORD } },
  );
});

after(async () => {
  await w?.stop();
  await Promise.all([hub?.stop(), up?.stop(), trap?.stop(), dir?.cleanup()]);
});

/** The Authorization values wharf sent upstream (bearer tokens and Basic encodings), from the proxies' records. */
function sentUpstream(): string[] {
  const out = new Set<string>();
  for (const p of [hub.proxy, up.proxy]) {
    for (const r of p.requests) {
      const h = r.headers?.authorization;
      if (h) out.add(h.replace(/^\w+\s+/, ''));
    }
  }
  return [...out];
}

describe('secrets stay out of logs, errors and metrics', () => {
  it('pulls through token and Basic upstreams with credentials', async () => {
    await pullAndVerify(w, 'library/sec', '1', hubImage);
    await pullAndVerify(w, 'basic.test/team/app', '1', basicImage);
    const tokens = sentUpstream().filter((t) => t.startsWith('eyJ'));
    assert.ok(tokens.length > 0, 'wharf sent the hub upstream a bearer token (else this test proves nothing about tokens)');
  });

  it('fails against upstreams with wrong credentials, without naming them', async () => {
    for (const [repo, what] of [
      ['badhub.test/library/sec', 'token upstream, wrong password'],
      ['badbasic.test/team/app', 'Basic upstream, wrong password'],
    ] as const) {
      const res = keep(await getManifest(w, repo, '1'));
      assert.ok(res.status >= 400, `${what}: HTTP ${res.status}`);
      keep(await getBlob(w, repo, hubImage.layers[0]!.digest));
    }
  });

  it('refuses a redirect to an unconfigured host whose URL carries a signature', async () => {
    const layer = hubImage.layers[0]!.digest;
    up.proxy.inject({
      match: { method: 'GET', path: /\/blobs\// },
      action: {
        kind: 'status',
        status: 307,
        headers: { location: `http://${trap.host}/blob?X-Amz-Signature=${SIGNATURE}&token=${SIGNATURE}&access_token=${SIGNATURE}` },
      },
      times: 2,
    });
    const res = keep(await getBlob(w, 'basic.test/team/other', redirected.layers[0]!.digest));
    up.proxy.clearFaults();
    assert.ok(res.status >= 400, `the redirect is refused: HTTP ${res.status}`);
    assert.equal(trap.connections, 0, 'no connection to the unconfigured host');
    keep(await getBlob(w, 'library/sec', layer));
  });

  it('takes client requests with credentials in headers and query parameters', async () => {
    const headers: Array<Record<string, string>> = [
      { authorization: `Basic ${basic('alice', CLIENT_PASSWORD)}` },
      { authorization: `Bearer ${CLIENT_TOKEN}` },
      { 'proxy-authorization': `Basic ${basic('alice', CLIENT_PASSWORD)}` },
      { cookie: `session=${CLIENT_TOKEN}` },
      { 'x-registry-auth': Buffer.from(JSON.stringify({ username: 'alice', password: CLIENT_PASSWORD })).toString('base64') },
    ];
    const paths = [
      '/v2/',
      `/v2/library/sec/manifests/1?token=${QUERY_TOKEN}`,
      `/v2/library/sec/tags/list?access_token=${QUERY_TOKEN}&password=${CLIENT_PASSWORD}`,
      `/v2/nope/NOPE/manifests/1?token=${QUERY_TOKEN}`,
      `/v2/library/sec/blobs/uploads/?password=${CLIENT_PASSWORD}`,
      `/token?service=wharf&scope=repository:library/sec:pull&password=${CLIENT_PASSWORD}`,
      `/v2/_catalog?n=x&token=${QUERY_TOKEN}`,
    ];
    for (const path of paths) {
      for (const h of headers) keep(await rawRequest(w, path.includes('uploads') ? 'POST' : 'GET', path, { headers: h }), path.startsWith('/token'));
    }
    // wharf's own token flow: a token issued to alice, then used
    const issued = await rawRequest(w, 'GET', '/token?service=wharf&scope=repository:local/app:pull,push', { headers: { authorization: `Basic ${basic('alice', ALICE_PASSWORD)}` } });
    assert.equal(issued.status, 200, issued.body.toString());
    const token = (JSON.parse(issued.body.toString()) as { token: string }).token;
    issuedTokens.push(token);
    for (const auth of [`Bearer ${token}`, `Bearer ${STATIC_TOKEN}`, `Basic ${basic('ci', STATIC_TOKEN)}`, `Basic ${basic('alice', ALICE_PASSWORD)}`]) {
      const post = keep(await rawRequest(w, 'POST', '/v2/local/app/blobs/uploads/', { headers: { authorization: auth } }));
      assert.equal(post.status, 202, `${auth.slice(0, 6)}: ${post.body.toString()}`);
      keep(await rawRequest(w, 'GET', '/v2/local/app/tags/list', { headers: { authorization: auth } }));
    }
    keep(await rawRequest(w, 'GET', '/v2/local/app/tags/list', { headers: { authorization: `Bearer ${token}x` } }));
    keep(await rawRequest(w, 'POST', '/token', {
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${basic('alice', CLIENT_PASSWORD)}` },
      body: `grant_type=password&username=alice&password=${CLIENT_PASSWORD}&refresh_token=${CLIENT_TOKEN}&service=wharf`,
    }));
  });

  it('no secret appears in the log, an answer or /metrics', async () => {
    const metrics = await request(`${w.url}/metrics`);
    assert.equal(metrics.status, 200);
    const logs = w.logs();
    assert.match(logs, /"level":"debug"/, 'wharf logged at debug (else the log proves little)');
    const secrets = [
      PUSHER.password,
      MIRROR_USER.password,
      WRONG_HUB_PASSWORD,
      WRONG_BASIC_PASSWORD,
      CLIENT_PASSWORD,
      ALICE_PASSWORD,
      STATIC_TOKEN,
      basic('ci', STATIC_TOKEN),
      basic('alice', ALICE_PASSWORD),
      ...issuedTokens,
      CLIENT_TOKEN,
      QUERY_TOKEN,
      SIGNATURE,
      basic(PUSHER.username, PUSHER.password),
      basic(MIRROR_USER.username, MIRROR_USER.password),
      basic(MIRROR_USER.username, WRONG_BASIC_PASSWORD),
      basic(PUSHER.username, WRONG_HUB_PASSWORD),
      basic('alice', CLIENT_PASSWORD),
      ...sentUpstream(),
    ];
    const places: Array<[string, string, boolean?]> = [
      ['log', logs],
      ['/metrics', metrics.body.toString('utf8')],
      ...answers.map((a, i): [string, string, boolean?] => [`answer ${i} (HTTP ${a.status})`, `${JSON.stringify(a.headers)} ${a.body.toString('utf8')}`, a.issuesTokens]),
    ];
    const found: string[] = [];
    for (const [where, text, issuesTokens] of places) {
      for (const s of secrets) if (text.includes(s)) found.push(`${where} contains ${JSON.stringify(s.slice(0, 24))}…: ${excerpt(text, s)}`);
      // a JWT, whoever issued it (only the token endpoint's own answers may carry one)
      if (!issuesTokens && /eyJ[\w-]{8,}\./.test(text)) found.push(`${where} contains a JWT: ${excerpt(text, 'eyJ')}`);
    }
    assert.deepEqual(found, []);
  });
});

function excerpt(text: string, needle: string): string {
  const i = text.indexOf(needle);
  return JSON.stringify(text.slice(Math.max(0, i - 200), i + 100));
}
