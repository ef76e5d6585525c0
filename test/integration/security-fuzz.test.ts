/**
 * Hostile input from clients (issue 7, inbound): seeded, bounded property tests that throw generated
 * names, references, digests, query parameters, Range/Content-Range and body headers at one running
 * wharf (a local repository, a real Distribution upstream for the pull-through paths, and client auth
 * with rules that let anonymous callers everywhere, so Authorization headers are parsed but rarely block).
 *
 * Every answer must be a valid success for its route or a well-formed OCI error (never a 500, never
 * late), the process must survive, and nothing outside the data directory may be read or written:
 * a canary directory sits next to the data directory, and wharf runs under `strace` during the run.
 *
 * Reproduce a failure with the printed seed: FUZZ_SEED=<seed> [FUZZ_RUNS=<n>] node --import tsx --test <this file>.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import type { HttpResponse } from '../helpers/http.js';
import { startTrap, type Trap } from '../helpers/mirror.js';
import { makeImage, pushImage, sha256 } from '../helpers/oci-image.js';
import { waitExit } from '../helpers/process.js';
import { htpasswdFile, startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, startWharf, type WharfProcess } from '../helpers/wharf.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
/** Each answer within this bound (a hang is a bug as much as a crash). */
const ANSWER_MS = 5000;
const MAX_MANIFEST = 16 * 1024;
const MAX_BLOB = 256 * 1024;
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OCI_CODES = new Set([
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'TAG_INVALID',
  'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS', 'RANGE_INVALID', 'PAGINATION_NUMBER_INVALID',
  'UNAVAILABLE', 'UNKNOWN',
]);

const local = makeImage({ layers: 2, layerSize: 4096 });
const mirrored = makeImage({ layers: 1, layerSize: 4096 });
const LOCAL_REPO = 'fuzz/app';
/** Holds the same image; no generator can produce this name (`__`), so it must come through intact. */
const KEEP_REPO = 'keep__safe/app';
const UP_ALIAS = 'up.test';
const UP_REPO = 'lib/img';
const USER = { name: 'fuzzer', password: 'fuzz-pass-1' };
const STATIC_TOKEN = 'fuzz-static-token-0123456789';
const b64 = (s: string): string => Buffer.from(s, 'latin1').toString('base64');

/** A directory next to the data directory that wharf must never touch. */
const canaryName = 'canary';
let parent: TempDir;
/** wharf's own files (htpasswd) live apart from the canary's parent */
let configDir: TempDir;
let htpasswd: string;
let dataDir: string;
let canaryDir: string;
let canaryBefore: Map<string, string>;
let upstream: RegistryProcess;
let trap: Trap | undefined;
const trapHost = (): string => `127.0.0.1:${trapPort()}`;
const trapPort = (): number => trap?.port ?? 9;
let w: WharfProcess;

// ---- the exchange: request targets and headers are sent exactly as generated -----------------------------

interface Spec {
  method: string;
  /** request target; characters above 0x7f are already UTF-8 bytes as latin1 (what a raw client sends) */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** send the body chunked (no Content-Length) */
  chunked: boolean;
  /** a malformed Content-Length header value: Node's HTTP parser, not wharf, answers these */
  badLength?: string;
}

function send(s: Spec): Promise<HttpResponse & { ms: number }> {
  const started = Date.now();
  const headers: Record<string, string> = { ...s.headers };
  if (s.badLength !== undefined) headers['content-length'] = s.badLength;
  else if (s.chunked && s.body !== undefined) headers['transfer-encoding'] = 'chunked';
  else if (s.body !== undefined) headers['content-length'] = String(s.body.length);
  return new Promise((resolveRes, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: w.port, method: s.method, path: s.path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
        resolveRes({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks), ms: Date.now() - started });
      });
    });
    req.setTimeout(ANSWER_MS * 2, () => req.destroy(new Error(`no answer within ${ANSWER_MS * 2} ms`)));
    req.once('error', reject);
    if (s.body !== undefined && s.chunked && s.badLength === undefined) {
      // two chunks, so a streaming reader sees more than one piece
      const mid = s.body.length >> 1;
      req.write(s.body.subarray(0, mid));
      req.end(s.body.subarray(mid));
    } else {
      req.end(s.badLength === undefined ? s.body : undefined);
    }
  });
}

/** UTF-8 bytes as a latin1 string: Node's client sends those bytes unchanged in the request line. */
const utf8Raw = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');
/** Bytes outside visible ASCII percent-encoded, the way clients send them (raw ones never get past Node's parser). */
const pct = (s: string): string => s.replace(/[^\x21-\x7e]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
/** A request Node's HTTP parser refuses (400, no body) before wharf sees it: raw non-ASCII bytes or a bad Content-Length. */
const parserRefuses = (s: Spec): boolean => s.badLength !== undefined || /[^\x21-\x7e]/.test(s.path);

// ---- generators ---------------------------------------------------------------------------------------------

const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const printable = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 24 });
const rawBytes = fc.string({ unit: fc.integer({ min: 0x21, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 24 });
const unicode = fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => pct(utf8Raw(s)));

function nameArb(): fc.Arbitrary<string> {
  const canaryRel = `../${canaryName}`;
  return fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(LOCAL_REPO, LOCAL_REPO, `${UP_ALIAS}/${UP_REPO}`, UP_REPO, 'fuzz/other', `${UP_ALIAS}/lib/nothing`) },
    { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9]{1,6}([._-][a-z0-9]{1,4})?(\/[a-z0-9]{1,6}){0,3}$/) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        '..', '.', `fuzz/${canaryRel}`, `fuzz/../../${canaryName}`, '%2e%2e', `fuzz/%2e%2e/%2e%2e/${canaryName}`, '%2E%2E%2F%2E%2E',
        'fuzz%2Fapp', 'fuzz%2fapp', 'fuzz%252fapp', '%252e%252e', 'fuzz//app', '/fuzz/app', 'fuzz/app/', 'fuzz/./app',
        'fuzz/app%00', '%00', 'fuzz/%00/app', 'a\\..\\b', '~root', 'FUZZ/APP', 'fuzz/App', `${canaryDir}`,
        'a'.repeat(255), 'a'.repeat(256), `${'a/'.repeat(150)}a`, 'a'.repeat(3000),
        `${trapHost()}/x`, `127.0.0.1:${trapPort()}/x`, '169.254.169.254/latest', 'localhost/x', `${UP_ALIAS}/../${UP_REPO}`,
        `${UP_ALIAS}%2f${UP_REPO}`, `${UP_ALIAS}/${pct(utf8Raw('ünï'))}`, pct(utf8Raw('fuzz/ápp')), pct(utf8Raw('名前/イメージ')), utf8Raw('fuzz/ápp'),
      ),
    },
    { weight: 1, arbitrary: fc.tuple(printable, rawBytes).map(([a, b]) => `fuzz/${a}${pct(b)}`) },
    { weight: 1, arbitrary: unicode },
  );
}

const knownDigests = [local.manifestDigest, local.config.digest, ...local.layers.map((l) => l.digest), mirrored.manifestDigest, mirrored.config.digest, mirrored.layers[0]!.digest];

const digestArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...knownDigests) },
  { weight: 2, arbitrary: hex(64).map((h) => `sha256:${h}`) },
  { weight: 1, arbitrary: hex(128).map((h) => `sha512:${h}`) },
  { weight: 1, arbitrary: fc.constantFrom(...knownDigests).map((d) => d.toUpperCase()) },
  { weight: 1, arbitrary: fc.constantFrom(...knownDigests).map((d) => d.replace('sha256:', 'sha256:'.toUpperCase())) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 200 }).chain((n) => hex(n)).map((h) => `sha256:${h}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'sha256:', ':', 'sha256', `md5:${'0'.repeat(32)}`, `sha1:${'0'.repeat(40)}`, `sha384:${'0'.repeat(96)}`, `sha256+b64:${'A'.repeat(43)}=`,
      'sha256:../../../etc/passwd', 'sha256:..%2f..%2f..%2fetc%2fpasswd', `sha256:${'0'.repeat(62)}..`, `sha256:%2e%2e%2f${canaryName}`,
      `sha256:${'0'.repeat(64)}%00`, `sha256:${'g'.repeat(64)}`, `sha256:${'0'.repeat(5000)}`, 'sha256:-1',
    ),
  },
  { weight: 1, arbitrary: rawBytes.map(pct) },
);

const tagArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('v1', '1', 'latest', 'missing') },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/) },
  { weight: 2, arbitrary: fc.constantFrom('-v1', '.v1', 't'.repeat(128), 't'.repeat(129), '..', '%2e%2e', 'v%2e1', 'v1%00', 'v1;rm', `..%2f..%2f${canaryName}`) },
  { weight: 1, arbitrary: rawBytes.map(pct) },
);

/** `session` opens a real upload session in the local repository right before the request. */
const uploadIdArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constant('session') },
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 2, arbitrary: fc.constantFrom('', '..', `..%2f..%2f${canaryName}%2fsecret.txt`, '%2e%2e', 'x'.repeat(300), `${'0'.repeat(32)}`, '.tmp', 'session%00') },
  { weight: 1, arbitrary: rawBytes.map(pct) },
);

/** A path tail and the methods its endpoint serves (most requests use one of them, to get past the router). */
interface Route {
  tail: string | { upload: string };
  methods: string[];
}
const route = (tail: Route['tail'], ...methods: string[]): Route => ({ tail, methods });
/** The token endpoint (`/token?service=…&scope=<type>:<name>:<actions>`), with the name as the scope's resource. */
const TOKEN = '@token';
const tailArb: fc.Arbitrary<Route> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(tagArb, digestArb).map((r) => route(`manifests/${r}`, 'GET', 'HEAD', 'PUT', 'DELETE')) },
  { weight: 4, arbitrary: digestArb.map((d) => route(`blobs/${d}`, 'GET', 'HEAD', 'DELETE')) },
  { weight: 2, arbitrary: fc.constantFrom('blobs/uploads/', 'blobs/uploads').map((t) => route(t, 'POST')) },
  { weight: 3, arbitrary: uploadIdArb.map((id) => route({ upload: id }, 'PATCH', 'PUT', 'GET', 'DELETE')) },
  { weight: 2, arbitrary: fc.constant(route('tags/list', 'GET')) },
  { weight: 1, arbitrary: digestArb.map((d) => route(`referrers/${d}`, 'GET')) },
  { weight: 1, arbitrary: fc.constantFrom('manifests/', 'blobs/', 'tags', 'referrers/', '', 'manifests/v1/extra', '_catalog').map((t) => route(t, 'GET')) },
  { weight: 1, arbitrary: fc.constant(route(TOKEN, 'GET', 'POST')) },
);
const anyMethod = fc.constantFrom('GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS');
/** `?digest=BODY` stands for the digest of the generated body (a monolithic upload that can succeed). */
const BODY_DIGEST = 'BODY';

const queryValue = fc.oneof(
  fc.constantFrom('', '0', '1', '2', '-1', '1.5', '1e3', '1e400', '99999999999999999999999', 'NaN', 'Infinity', '0x10', ' 1', 'null'),
  fc.constantFrom(...knownDigests, BODY_DIGEST, BODY_DIGEST, UP_ALIAS, LOCAL_REPO, 'fuzz/other', `${UP_ALIAS}/${UP_REPO}`, 'docker.io', '127.0.0.1', '169.254.169.254', 'localhost'),
  fc.constantFrom('..%2f..%2fetc%2fpasswd', '%00', '%ZZ', '%', '%2', 'a%26b%3Dc', 'application/vnd.oci.image.manifest.v1+json'),
  fc.constant(null).map(() => trapHost()),
  printable.map(encodeURIComponent),
  rawBytes.map(pct),
);
const queryArb = fc
  .array(fc.tuple(fc.constantFrom('n', 'last', 'ns', 'digest', 'mount', 'from', 'artifactType', 'N', 'digest[]', 'x', ''), queryValue), { maxLength: 3 })
  .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`));

const big = '99999999999999999999999';
const rangeArb = fc.oneof(
  fc.constantFrom(
    'bytes=0-0', 'bytes=0-10', 'bytes=10-', 'bytes=-5', 'bytes=-0', 'bytes=5-1', 'bytes=0-', `bytes=${big}-`, `bytes=0-${big}`, `bytes=-${big}`,
    'bytes=0-1,2-3', 'bytes=-', 'bytes=', 'bytes=a-b', 'bytes=-1-2', 'items=0-1', 'bytes = 0-1', 'bytes=9007199254740993-9007199254740999', '0-10',
  ),
  fc.tuple(fc.nat(20000), fc.nat(20000)).map(([a, b]) => `bytes=${a}-${b}`),
  printable,
);
const contentRangeArb = fc.oneof(
  fc.constantFrom('0-0', '0-9', '0-99', '5-1', '-1-5', `0-${big}`, `${big}-${big}`, 'bytes 0-9/*', 'bytes 0-9/10', 'bytes=0-9', '0-9/x', '*', 'a-b', '', '9007199254740993-9007199254740999'),
  fc.tuple(fc.nat(300000), fc.nat(300000)).map(([a, b]) => `${a}-${b}`),
  printable,
);
const contentTypeArb = fc.constantFrom(
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/octet-stream', 'application/json', 'text/plain', '', 'a/b; charset=utf-8',
);
const acceptArb = fc.constantFrom('application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json', '*/*', 'text/html', ',,;;', 'application/vnd.docker.distribution.manifest.v1+json');

const jsonJunk = fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v)));
const bodyArb: fc.Arbitrary<Buffer | undefined> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)) },
  { weight: 2, arbitrary: fc.constantFrom(local.manifest, mirrored.manifest, local.layers[0]!.bytes, local.config.bytes) },
  { weight: 1, arbitrary: jsonJunk },
  { weight: 1, arbitrary: fc.constant(Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:../../x","size":-1},"layers":[{}]}')) },
);

const authArb = fc.oneof(
  fc.constantFrom(
    `Basic ${b64(`${USER.name}:${USER.password}`)}`, `Basic ${b64(`${USER.name}:wrong`)}`, `Basic ${b64('nobody:x')}`, `Basic ${b64('nocolon')}`,
    `Basic ${b64(':')}`, `Basic ${b64(`ci:${STATIC_TOKEN}`)}`, 'Basic', 'Basic ', 'Basic !!!!', 'Basic =', `Basic ${'A'.repeat(6000)}`,
    `Bearer ${STATIC_TOKEN}`, 'Bearer', 'Bearer x.y.z', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJmdXp6ZXIifQ.', `Bearer ${'e'.repeat(6000)}`,
    'bearer  a b c', 'Digest username="x"', 'Negotiate YII=', `Basic ${b64(`${USER.name}:${USER.password}`)}, Bearer x`,
  ),
  printable.map((p) => `Basic ${b64(p)}`),
  printable.map((p) => `Bearer ${p}`),
);
const tokenQueryArb = fc
  .tuple(
    fc.constantFrom('pull', 'push', 'pull,push', 'delete', '*', '', 'pull,pull,overlay', 'x'),
    fc.constantFrom('service=wharf&', '', 'service=other&', 'service=&'),
    fc.constantFrom('repository', 'registry', 'repository(plugin)', ''),
  )
  .map(([actions, service, type]) => ({ actions, service, type }));

/** Present in one request of `1 / (1 + absent)`: most requests change only a few things at once. */
const sometimes = <T>(a: fc.Arbitrary<T>, absent = 3): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });

/** Built once set-up is done: some values name the canary directory and the trap's port. */
const specArb = () =>
  fc.record({
    route: tailArb.chain((t) => fc.record({ tail: fc.constant(t.tail), method: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...t.methods) }, { weight: 1, arbitrary: anyMethod }) })),
    name: nameArb(),
    query: queryArb,
    range: sometimes(rangeArb, 2),
    contentRange: sometimes(contentRangeArb, 2),
    contentType: sometimes(contentTypeArb, 1),
    accept: sometimes(acceptArb),
    authorization: sometimes(authArb, 2),
    tokenQuery: tokenQueryArb,
    body: bodyArb,
    chunked: fc.boolean(),
    badLength: sometimes(fc.constantFrom('-1', 'abc', '1e3', big, '0x10', '1, 2', '18446744073709551616'), 15),
  });
type Generated = ReturnType<typeof specArb> extends fc.Arbitrary<infer T> ? T : never;


async function openSession(): Promise<string> {
  const res = await send({ method: 'POST', path: `/v2/${LOCAL_REPO}/blobs/uploads/`, headers: {}, chunked: false });
  assert.equal(res.status, 202, describeResponse(res));
  const loc = res.headers.location!;
  return loc.slice(loc.lastIndexOf('/') + 1);
}

async function toSpec(g: Generated): Promise<Spec> {
  const t = g.route.tail;
  const tail = typeof t === 'string' ? t : `blobs/uploads/${t.upload === 'session' ? await openSession() : t.upload}`;
  const query = g.query.replaceAll(`=${BODY_DIGEST}`, `=${sha256(g.body ?? Buffer.alloc(0))}`);
  const tq = g.tokenQuery;
  const path =
    tail === TOKEN
      ? `/token?${tq.service}scope=${tq.type}:${g.name}:${tq.actions}`
      : g.name === '' && tail === '_catalog'
        ? '/v2/_catalog'
        : `/v2/${g.name}/${tail}`;
  const headers: Record<string, string> = {};
  if (g.range !== undefined) headers.range = g.range;
  if (g.contentRange !== undefined) headers['content-range'] = g.contentRange;
  if (g.contentType !== undefined) headers['content-type'] = g.contentType;
  if (g.accept !== undefined) headers.accept = g.accept;
  if (g.authorization !== undefined) headers.authorization = g.authorization;
  // Space and control characters cannot be sent at all; other raw bytes are sent as they are.
  const target = `${path}${tail === TOKEN ? query.replace('?', '&') : query}`.replace(/[\x00-\x20\x7f]/g, pct);
  return { method: g.route.method, path: target, headers, body: g.body, chunked: g.chunked, badLength: g.badLength };
}

// ---- the oracle ---------------------------------------------------------------------------------------------

function routeOf(path: string): string {
  const p = path.split('?')[0]!;
  if (p === '/token') return 'token';
  if (/\/blobs\/uploads(\/|$)/.test(p)) return 'upload';
  if (/\/blobs\/[^/]+$/.test(p)) return 'blob';
  if (/\/manifests\/[^/]+$/.test(p)) return 'manifest';
  if (/\/tags\/list$/.test(p)) return 'tags';
  if (/\/referrers\/[^/]+$/.test(p)) return 'referrers';
  if (/^\/v2\/_catalog$/.test(p)) return 'catalog';
  return 'other';
}

/** Throws when the answer is neither a valid success for the route nor a well-formed OCI error. */
function check(s: Spec, res: HttpResponse & { ms: number }): void {
  const what = `${s.method} ${JSON.stringify(s.path.slice(0, 300))} ${JSON.stringify(s.headers)}${s.badLength ? ` content-length=${s.badLength}` : ''} → ${describeResponse(res)}`;
  assert.ok(res.ms <= ANSWER_MS, `answer took ${res.ms} ms: ${what}`);
  assert.notEqual(res.status, 500, `500 is a bug: ${what}`);
  if (parserRefuses(s) && res.status === 400 && res.headers['content-type'] === undefined) {
    // Not HTTP: Node's parser answers (400, Connection: close) before wharf sees the request.
    assert.equal(res.headers.connection, 'close', what);
    return;
  }
  if (res.status >= 200 && res.status < 300) return checkSuccess(s, res, what);
  assert.ok(res.status >= 400 && res.status < 600, `neither success nor error: ${what}`);
  if (res.status === 401) assert.ok(res.headers['www-authenticate'], `401 without a challenge: ${what}`);
  if (s.method === 'HEAD') {
    assert.equal(res.body.length, 0, `HEAD error with a body: ${what}`);
    return;
  }
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, what);
  let parsed: unknown;
  assert.doesNotThrow(() => (parsed = JSON.parse(res.body.toString('utf8'))), `error body is not JSON: ${what}`);
  // The OAuth2 password grant (POST /token) answers errors the OAuth2 way (RFC 6749 §5.2), as Docker's clients expect.
  if (routeOf(s.path) === 'token' && s.method === 'POST' && typeof (parsed as { error?: unknown }).error === 'string') {
    assert.ok(res.status === 400 || res.status === 401, `OAuth2 error with status ${res.status}: ${what}`);
    return;
  }
  const errs = (parsed as { errors?: unknown }).errors;
  assert.ok(Array.isArray(errs) && errs.length > 0, `no errors[]: ${what}`);
  for (const e of errs as Array<{ code?: unknown; message?: unknown }>) {
    assert.ok(typeof e.code === 'string' && OCI_CODES.has(e.code), `code not from the OCI list: ${what}`);
    assert.equal(typeof e.message, 'string', `message not a string: ${what}`);
  }
  // The only excuse for a 5xx is the upstream's own failure (Distribution answers 500 for a manifest
  // requested by a layer's digest), passed on as UNAVAILABLE.
  if (res.status >= 500) assert.ok(res.status === 503 && /upstream/.test(res.body.toString()), `server error: ${what}`);
}

function checkSuccess(s: Spec, res: HttpResponse, what: string): void {
  const route = routeOf(s.path);
  const ok: Record<string, number[]> = {
    manifest: s.method === 'PUT' ? [201] : s.method === 'DELETE' ? [202] : [200],
    blob: s.method === 'DELETE' ? [202] : [200, 206],
    upload: s.method === 'GET' || s.method === 'DELETE' ? [204] : [201, 202],
    tags: [200],
    referrers: [200],
    catalog: [200],
    token: [200],
    other: [200],
  };
  assert.ok(ok[route]!.includes(res.status), `unexpected success status for ${route}: ${what}`);
  if (s.method === 'HEAD') return;
  if (route === 'manifest' && s.method === 'GET') {
    assert.equal(res.headers['docker-content-digest'], sha256(res.body), `manifest body does not match its digest: ${what}`);
  }
  if (route === 'blob' && s.method === 'GET') {
    const digest = res.headers['docker-content-digest'] ?? '';
    const boundary = /^multipart\/byteranges; boundary=(\S+)$/.exec(res.headers['content-type'] ?? '')?.[1];
    if (res.status === 200) assert.equal(sha256(res.body), digest, `blob body does not match its digest: ${what}`);
    else if (boundary !== undefined) {
      // Several ranges (RFC 9110 §14.6): each part's length is what its Content-Range says.
      const parts = res.body.toString('latin1').split(`--${boundary}`);
      assert.equal(parts.at(-1), '--\r\n', `multipart/byteranges without its closing delimiter: ${what}`);
      for (const p of parts.slice(1, -1)) {
        const part = p.replace(/^\r\n/, '');
        const cut = part.indexOf('\r\n\r\n');
        const [head, data] = [part.slice(0, cut), part.slice(cut + 4)];
        const m = /Content-Range: bytes (\d+)-(\d+)\/(\d+)/i.exec(head);
        assert.ok(m, `a part without a valid Content-Range: ${what}`);
        assert.equal(data.replace(/\r\n$/, '').length, Number(m[2]) - Number(m[1]) + 1, `part length: ${what}`);
      }
    } else {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers['content-range'] ?? '');
      assert.ok(m, `206 without a valid Content-Range: ${what}`);
      assert.equal(res.body.length, Number(m[2]) - Number(m[1]) + 1, `206 body length: ${what}`);
    }
  }
  if (res.status === 201 || (route === 'upload' && res.status === 202)) assert.ok(res.headers.location, `no Location: ${what}`);
  if (route === 'token') {
    const t = JSON.parse(res.body.toString()) as { token?: unknown };
    assert.ok(typeof t.token === 'string' && t.token.length > 0, `token answer without a token: ${what}`);
  }
  if (route === 'tags') {
    const t = JSON.parse(res.body.toString()) as { name?: unknown; tags?: unknown };
    assert.ok(typeof t.name === 'string' && Array.isArray(t.tags), what);
  }
}

// ---- strace: every path wharf touches during the run --------------------------------------------------------

interface Trace {
  stop(): Promise<string>;
}

const TRACED = 'open,openat,openat2,creat,mkdir,mkdirat,unlink,unlinkat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,truncate,rmdir,chmod,fchmodat,chown,fchownat';

async function traceFiles(pid: number, out: string): Promise<Trace | undefined> {
  let child: ChildProcess;
  try {
    child = spawn('strace', ['-f', '-s', '4096', '-e', `trace=${TRACED}`, '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    return undefined;
  }
  let err = '';
  const attached = await new Promise<boolean>((res) => {
    const timer = setTimeout(() => res(false), 5000);
    child.once('error', () => res(false));
    child.once('exit', () => res(false));
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString();
      if (/attached/.test(err)) {
        clearTimeout(timer);
        res(true);
      }
    });
  });
  if (!attached) {
    child.kill('SIGKILL');
    return undefined;
  }
  // strace attaches thread by thread; let it finish before the first fuzzed request
  await new Promise((r) => setTimeout(r, 300));
  return {
    async stop() {
      child.kill('SIGINT');
      await waitExit(child, 5000);
      return readFile(out, 'utf8');
    },
  };
}

interface Touch {
  call: string;
  path: string;
  write: boolean;
}

function touches(trace: string): Touch[] {
  const out: Touch[] = [];
  for (const line of trace.split('\n')) {
    const m = /^\d+\s+(\w+)\((.*)$/.exec(line);
    if (!m) continue;
    const call = m[1]!;
    const args = m[2]!;
    const paths = [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]!);
    if (paths.length === 0) continue;
    const opening = call === 'open' || call === 'openat' || call === 'openat2';
    const write = !opening || /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(args);
    for (const p of paths) out.push({ call, path: resolve(REPO_ROOT, p), write });
  }
  return out;
}

const under = (p: string, dir: string): boolean => p === dir || p.startsWith(dir.endsWith(sep) ? dir : dir + sep);

// ---- set-up ---------------------------------------------------------------------------------------------------

async function canaryState(): Promise<Map<string, string>> {
  const state = new Map<string, string>();
  for (const e of await readdir(parent.path, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath, e.name);
    if (under(p, dataDir)) continue;
    const st = await stat(p);
    state.set(p, e.isFile() ? `${st.size} ${st.mtimeMs} ${sha256(await readFile(p))}` : `dir ${st.mtimeMs}`);
  }
  return state;
}

before(async () => {
  parent = await tempDir('wharf-fuzz-');
  dataDir = join(parent.path, 'data');
  canaryDir = join(parent.path, canaryName);
  await mkdir(canaryDir);
  await writeFile(join(canaryDir, 'secret.txt'), randomBytes(64).toString('hex'));
  await writeFile(join(parent.path, 'sibling.txt'), 'must stay as it is');
  canaryBefore = await canaryState();
  configDir = await tempDir('wharf-fuzz-config-');
  htpasswd = join(configDir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { [USER.name]: USER.password });
  trap = await startTrap();
  upstream = await startRegistry();
  await pushImage(upstream.url, UP_REPO, '1', mirrored);
  w = await startWharf({
    dataDir,
    config: {
      upstreams: [{ name: 'up', url: upstream.url, default: true, aliases: [UP_ALIAS], tagFreshness: '1s', notFoundTtl: '1s' }],
      limits: { maxManifestBytes: MAX_MANIFEST, maxBlobBytes: MAX_BLOB },
      log: { level: 'warn' },
      auth: {
        htpasswd,
        tokens: [{ user: 'ci', token: STATIC_TOKEN }],
        // what anonymous may do every user may do: credentials are parsed and checked, rarely in the way
        rules: [{ repositories: ['**'], users: ['anonymous'], actions: ['pull', 'push', 'delete'] }],
      },
    },
  });
  await pushImage(w.url, LOCAL_REPO, 'v1', local);
  await pushImage(w.url, KEEP_REPO, 'v1', local);
});

after(async () => {
  await w?.stop();
  await upstream?.stop();
  await trap?.stop();
  await parent?.cleanup();
  await configDir?.cleanup();
});

describe('hostile requests against a running wharf (seeded fuzz)', () => {
  it(`answers every request with a valid success or an OCI error, touching only its data dir (seed ${SEED}, ${RUNS} runs)`, async () => {
    const pid = w.pid!;
    const trace = await traceFiles(pid, join(configDir.path, 'strace.txt'));
    const tally = new Map<string, number>();
    let failure: unknown;
    try {
      await fc.assert(
        fc.asyncProperty(specArb(), async (g) => {
          const spec = await toSpec(g);
          const res = await send(spec);
          // a HEAD error has no body to judge: its GET twin must explain a 5xx
          if (spec.method === 'HEAD' && res.status >= 500) check({ ...spec, method: 'GET' }, await send({ ...spec, method: 'GET' }));
          const key = `${res.status}${res.status >= 400 && res.body.length > 0 ? `:${res.body.toString().match(/"code":"(\w+)"/)?.[1] ?? "?"}` : ""}`;
          tally.set(key, (tally.get(key) ?? 0) + 1);
          check(spec, res);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: process.env.FUZZ_SHRINK === undefined, verbose: 1 },
      );
    } catch (err) {
      failure = err;
    }
    const traced = trace ? await trace.stop() : undefined;
    console.log(`# statuses: ${[...tally].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}×${v}`).join(' ')}; strace ${traced === undefined ? 'off' : `${traced.split('\n').length} lines`}`);
    if (failure !== undefined) throw new Error(`fuzz failed (reproduce with FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS}):\n${(failure as Error).message}\n${String((failure as Error).cause ?? '')}\n--- wharf log tail ---\n${w.logs().slice(-3000)}`);

    // still alive and serving
    assert.equal(w.lastExit(), undefined, `wharf exited: ${JSON.stringify(w.lastExit())}\n${w.logs().slice(-3000)}`);
    assert.doesNotThrow(() => process.kill(pid, 0), 'wharf process is gone');
    const base = await send({ method: 'GET', path: '/v2/', headers: { authorization: `Basic ${b64(`${USER.name}:${USER.password}`)}` }, chunked: false });
    assert.equal(base.status, 200, describeResponse(base));
    const m = await send({ method: 'GET', path: `/v2/${KEEP_REPO}/manifests/v1`, headers: { accept: local.mediaType }, chunked: false });
    assert.equal(sha256(m.body), local.manifestDigest, 'an image the run never named is intact');
    for (const b of [local.config, ...local.layers]) {
      const r = await send({ method: 'GET', path: `/v2/${KEEP_REPO}/blobs/${b.digest}`, headers: {}, chunked: false });
      assert.equal(sha256(r.body), b.digest, `blob ${b.digest} intact`);
    }

    // nothing outside the data dir changed or appeared; no connection to an unconfigured port
    assert.deepEqual(await canaryState(), canaryBefore, 'files next to the data directory are unchanged');
    assert.equal(trap!.connections, 0, 'wharf connected to an unconfigured address');

    if (traced === undefined) {
      console.log('# strace unavailable: file access checked through the canary directory only');
      return;
    }
    const all = touches(traced);
    assert.ok(all.some((t) => under(t.path, dataDir)), `the trace saw no data-dir access, so it proves nothing:\n${traced.slice(0, 2000)}`);
    const tsxCache = join(tmpdir(), 'tsx-');
    const bad = all.filter((t) => {
      if (under(t.path, dataDir)) return false;
      if (t.path.includes(canaryName) || under(t.path, parent.path)) return true;
      // tsx compiles modules loaded lazily on first use into its cache: the test tooling, not wharf
      if (t.path.startsWith(tsxCache)) return false;
      // the htpasswd file is re-read when it changes
      if (t.path === htpasswd && !t.write) return false;
      if (t.write) return !t.path.startsWith('/dev/');
      return !['/proc/', '/sys/', '/etc/', '/dev/', '/usr/', '/lib', REPO_ROOT].some((d) => t.path.startsWith(d));
    });
    assert.deepEqual(bad, [], 'file system access outside the data directory');
  });
});
