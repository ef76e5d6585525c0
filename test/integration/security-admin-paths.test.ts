import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_ENDPOINTS } from '../../src/http/admin.js';
import { basicHeader } from '../helpers/http.js';
import { rawRequest, startWharf, type WharfProcess } from '../helpers/wharf.js';
import { deleteKeys, REDIS_URL, testPrefix } from './cluster-helpers.js';

/**
 * Issue 16 item 1: the guard and the routes must agree on what a path is. Every admin endpoint (the list
 * comes from admin.ts, so a new one is walked too), the peer endpoint and a guarded /metrics are sent with
 * odd spellings of their path — letter case, `//`, `%2F`, `%5F`, encoded letters, `/./`, `/../`, a trailing
 * slash — as raw request targets (a URL parser would normalise them before wharf sees them). Each spelling
 * must be refused; none may reach a handler past the guard the exact spelling gets.
 */

const INFLIGHT = '/_wharf/inflight/blobs/sha256:' + 'a'.repeat(64);
const ADMIN = { username: 'ops', password: 'ops-secret' };
const METRICS = { username: 'scraper', password: 'scrape-secret' };

const pct = (c: string): string[] => {
  const hex = c.charCodeAt(0).toString(16);
  return [`%${hex.toLowerCase()}`, `%${hex.toUpperCase()}`];
};

/** Spellings of `path` that are not `path` (each one a different raw request target). */
export function spellings(path: string): string[] {
  const segs = path.split('/').slice(1);
  const join = (s: string[], sep = '/'): string => '/' + s.join(sep);
  const out = new Set<string>();
  out.add(path.toUpperCase());
  segs.forEach((seg, i) => {
    const with_ = (v: string): string => join(segs.map((s, j) => (j === i ? v : s)));
    const first = seg.search(/[a-z]/i);
    if (first >= 0) {
      out.add(with_(seg.slice(0, first) + seg[first]!.toUpperCase() + seg.slice(first + 1)));
      for (const e of pct(seg[first]!)) out.add(with_(seg.slice(0, first) + e + seg.slice(first + 1)));
    }
    out.add(with_(seg.toUpperCase()));
    if (seg.includes('_')) for (const e of pct('_')) out.add(with_(seg.replace('_', e)));
    if (i > 0) {
      const before = segs.slice(0, i);
      const rest = segs.slice(i);
      out.add(join(before) + '//' + rest.join('/'));
      out.add(join(before) + '/./' + rest.join('/'));
      out.add(join(before) + '/%2e/' + rest.join('/'));
      out.add(join(before) + '/x/../' + rest.join('/'));
      out.add(join(before) + '/x/%2e%2e/' + rest.join('/'));
      out.add(join(before) + '%2F' + rest.join('/'));
      out.add(join(before) + '%2f' + rest.join('/'));
    }
  });
  out.add('/' + path);
  out.add('/./' + path.slice(1));
  out.add('/x/..' + path);
  out.add(path + '/');
  out.add(path + '/.');
  out.add(path + '%2F');
  out.delete(path);
  return [...out];
}

let guarded: WharfProcess;
let loopbackOnly: WharfProcess;
const keyPrefix = testPrefix();

before(async () => {
  // Cluster mode (Redis) so the peer endpoint exists; admin and /metrics behind their credentials.
  [guarded, loopbackOnly] = await Promise.all([
    startWharf({ config: { upstreams: [], redis: { url: REDIS_URL, keyPrefix }, admin: ADMIN, metrics: METRICS } }),
    startWharf({ config: { upstreams: [] } }),
  ]);
});

after(async () => {
  await Promise.all([guarded?.stop(), loopbackOnly?.stop()]);
  await deleteKeys(REDIS_URL, keyPrefix);
});

const REFUSED = [401, 403, 404];
const withRef = (path: string): string => `${path}?ref=team/none:1&dryRun=true`;

test('the spellings walked include the ones of the report', () => {
  const s = spellings('/_wharf/admin/repositories');
  for (const v of ['/_Wharf/admin/repositories', '/_wharf/Admin/repositories', '/_WHARF/ADMIN/REPOSITORIES', '//_wharf/admin/repositories', '/_wharf%2Fadmin/repositories', '/%5Fwharf/admin/repositories', '/_wharf/admin/repositories/', '/_wharf/./admin/repositories', '/_wharf/x/../admin/repositories']) {
    assert.ok(s.includes(v), v);
  }
});

test('admin credentials: no spelling of an admin path answers without them', async () => {
  const auth = { authorization: basicHeader(ADMIN) };
  for (const { method, path } of ADMIN_ENDPOINTS) {
    assert.equal((await rawRequest(guarded, method, withRef(path))).status, 401, `${method} ${path}: the exact spelling asks for credentials`);
    if (method === 'GET') assert.equal((await rawRequest(guarded, method, path, { headers: auth })).status, 200, `${method} ${path} with credentials`);
    for (const v of spellings(path)) {
      const res = await rawRequest(guarded, method, withRef(v));
      assert.ok(REFUSED.includes(res.status), `${method} ${v} without credentials answered ${res.status}`);
      // One rule: a spelling that is not the path is no endpoint, with credentials too.
      const authed = await rawRequest(guarded, method, withRef(v), { headers: auth });
      assert.ok(REFUSED.includes(authed.status), `${method} ${v} with credentials answered ${authed.status}`);
    }
  }
});

test('loopback-only admin API: no spelling lets a forwarded remote caller in', async () => {
  const remote = { 'x-forwarded-for': '203.0.113.9' };
  assert.equal((await rawRequest(loopbackOnly, 'GET', '/_wharf/admin/stats')).status, 200, 'a local caller is served');
  for (const { method, path } of ADMIN_ENDPOINTS) {
    assert.equal((await rawRequest(loopbackOnly, method, withRef(path), { headers: remote })).status, 403, `${method} ${path} from a remote caller`);
    for (const v of spellings(path)) {
      const res = await rawRequest(loopbackOnly, method, withRef(v), { headers: remote });
      assert.ok(REFUSED.includes(res.status), `${method} ${v} from a remote caller answered ${res.status}`);
    }
  }
});

test('the peer endpoint and a guarded /metrics: no spelling gets past their guard', async () => {
  assert.equal((await rawRequest(guarded, 'GET', INFLIGHT)).status, 404, 'the peer endpoint without the peer token');
  assert.equal((await rawRequest(guarded, 'GET', '/metrics')).status, 401, '/metrics without credentials');
  assert.equal((await rawRequest(guarded, 'GET', '/metrics', { headers: { authorization: basicHeader(METRICS) } })).status, 200, '/metrics with credentials');
  for (const path of [INFLIGHT, '/metrics']) {
    for (const v of spellings(path)) {
      const res = await rawRequest(guarded, 'GET', v);
      assert.ok(REFUSED.includes(res.status), `GET ${v} answered ${res.status}`);
      assert.doesNotMatch(res.body.toString('utf8'), /wharf_/, `GET ${v} served metrics`);
    }
  }
});
