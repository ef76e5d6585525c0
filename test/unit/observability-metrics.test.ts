import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { register as globalRegister } from 'prom-client';
import { createMetrics, metricNames, type PromMetrics } from '../../src/observability/metrics.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Just enough of the text exposition format (0.0.4) for assertions. */
function parse(body: string): Sample[] {
  const out: Sample[] = [];
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function samples(m: PromMetrics): Promise<Sample[]> {
  return parse((await m.render()).body);
}

/** Value of the one series with exactly these labels (undefined if absent). */
async function value(m: PromMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const want = JSON.stringify(Object.entries(labels).sort());
  const hits = (await samples(m)).filter(
    (s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want,
  );
  assert.ok(hits.length <= 1, `${name} ${want} appears ${hits.length} times`);
  return hits[0]?.value;
}

describe('createMetrics', () => {
  it('renders the Prometheus text format', async () => {
    const m = createMetrics({ collectDefault: false });
    const { contentType, body } = await m.render();
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    assert.match(body, /^# HELP wharf_http_requests_total /m);
    assert.match(body, /^# TYPE wharf_http_request_duration_seconds histogram$/m);
  });

  it('pre-initialises every cache kind × outcome and both byte sources at 0', async () => {
    const m = createMetrics({ collectDefault: false });
    for (const kind of ['manifest', 'blob', 'tag']) {
      for (const outcome of ['hit', 'miss', 'coalesced', 'stale']) {
        assert.equal(await value(m, 'wharf_cache_requests_total', { kind, outcome }), 0, `${kind}/${outcome}`);
      }
    }
    assert.equal(await value(m, 'wharf_bytes_served_total', { source: 'cache' }), 0);
    assert.equal(await value(m, 'wharf_bytes_served_total', { source: 'upstream' }), 0);
    assert.equal(await value(m, 'wharf_inflight_fetches'), 0);
    assert.equal(await value(m, 'wharf_cache_evictions_total'), 0);
  });

  it('cacheRequest counts by kind and outcome', async () => {
    const m = createMetrics({ collectDefault: false });
    m.cacheRequest('blob', 'hit');
    m.cacheRequest('blob', 'hit');
    m.cacheRequest('tag', 'stale');
    assert.equal(await value(m, 'wharf_cache_requests_total', { kind: 'blob', outcome: 'hit' }), 2);
    assert.equal(await value(m, 'wharf_cache_requests_total', { kind: 'tag', outcome: 'stale' }), 1);
    assert.equal(await value(m, 'wharf_cache_requests_total', { kind: 'manifest', outcome: 'hit' }), 0);
  });

  it('bytesServed counts misses as upstream bytes, the rest as cache bytes, and mirrored non-misses as spared', async () => {
    const m = createMetrics({ collectDefault: false });
    m.bytesServed('hit', 1000);
    m.bytesServed('coalesced', 20);
    m.bytesServed('stale', 4);
    m.bytesServed('local', 100);
    m.bytesServed('miss', 7);
    assert.equal(await value(m, 'wharf_bytes_served_total', { source: 'cache' }), 1124);
    assert.equal(await value(m, 'wharf_bytes_served_total', { source: 'upstream' }), 7);
    // pushed content was never the upstream's to serve: it saved the upstream nothing
    assert.equal(await value(m, 'wharf_bytes_spared_total'), 1024);
  });

  it('httpRequest counts by route/method/status and observes the duration histogram', async () => {
    const m = createMetrics({ collectDefault: false });
    m.httpRequest('end-3', 'get', 200, 0.003);
    m.httpRequest('end-3', 'GET', 200, 42);
    m.httpRequest('end-2', 'HEAD', 404, 0.0005);
    assert.equal(await value(m, 'wharf_http_requests_total', { route: 'end-3', method: 'GET', status: '200' }), 2);
    assert.equal(await value(m, 'wharf_http_requests_total', { route: 'end-2', method: 'HEAD', status: '404' }), 1);
    const lbl = { route: 'end-3', method: 'GET' };
    assert.equal(await value(m, 'wharf_http_request_duration_seconds_count', lbl), 2);
    assert.equal(await value(m, 'wharf_http_request_duration_seconds_sum', lbl), 42.003);
    assert.equal(await value(m, 'wharf_http_request_duration_seconds_bucket', { ...lbl, le: '0.001' }), 0);
    assert.equal(await value(m, 'wharf_http_request_duration_seconds_bucket', { ...lbl, le: '0.005' }), 1);
    assert.equal(await value(m, 'wharf_http_request_duration_seconds_bucket', { ...lbl, le: '60' }), 2);
    // the buckets reach from 1 ms to 5 min
    assert.notEqual(await value(m, 'wharf_http_request_duration_seconds_bucket', { ...lbl, le: '300' }), undefined);
  });

  it('upstream observer methods move the upstream series', async () => {
    const m = createMetrics({ collectDefault: false });
    m.request('docker.io', 'HEAD', 200, 0.2);
    m.request('docker.io', 'GET', 429, 0.1);
    m.request('ghcr.io', 'GET', 'error', 5);
    m.bytes('ghcr.io', 512);
    m.throttled('docker.io');
    m.digestMismatch('ghcr.io');
    m.rateLimit('docker.io', { limit: 100, remaining: 76, windowSeconds: 21600, observedAt: 0 });
    m.rateLimit('docker.io', { remaining: 75, observedAt: 1 });
    const up = 'wharf_upstream_requests_total';
    assert.equal(await value(m, up, { upstream: 'docker.io', method: 'HEAD', status: '200' }), 1);
    assert.equal(await value(m, up, { upstream: 'docker.io', method: 'GET', status: '429' }), 1);
    assert.equal(await value(m, up, { upstream: 'ghcr.io', method: 'GET', status: 'error' }), 1);
    assert.equal(await value(m, 'wharf_upstream_request_duration_seconds_count', { upstream: 'docker.io' }), 2);
    assert.equal(await value(m, 'wharf_upstream_request_duration_seconds_sum', { upstream: 'ghcr.io' }), 5);
    assert.equal(await value(m, 'wharf_upstream_bytes_total', { upstream: 'ghcr.io' }), 512);
    assert.equal(await value(m, 'wharf_upstream_throttled_total', { upstream: 'docker.io' }), 1);
    assert.equal(await value(m, 'wharf_upstream_digest_mismatch_total', { upstream: 'ghcr.io' }), 1);
    // a reading without a limit keeps the last known limit
    assert.equal(await value(m, 'wharf_upstream_ratelimit_limit', { upstream: 'docker.io' }), 100);
    assert.equal(await value(m, 'wharf_upstream_ratelimit_remaining', { upstream: 'docker.io' }), 75);
  });

  it('cache gauges and counters follow size, evictions, in-flight fetches and write errors', async () => {
    const m = createMetrics({ collectDefault: false });
    m.cacheSize(5 * 1024 ** 3, 1234);
    m.evicted(3);
    m.evicted(2);
    m.inflightFetches(1);
    m.inflightFetches(1);
    m.inflightFetches(-1);
    m.cacheWriteError();
    assert.equal(await value(m, 'wharf_cache_size_bytes'), 5 * 1024 ** 3);
    assert.equal(await value(m, 'wharf_cache_blobs'), 1234);
    assert.equal(await value(m, 'wharf_cache_evictions_total'), 5);
    assert.equal(await value(m, 'wharf_inflight_fetches'), 1);
    assert.equal(await value(m, 'wharf_cache_write_errors_total'), 1);
  });

  it('never lets a path, repository or tag into a label', async () => {
    const m = createMetrics({ collectDefault: false });
    m.httpRequest('/v2/library/alpine/manifests/latest', 'GET', 200, 0.01);
    m.request('https://registry-1.docker.io/v2/library/alpine', 'GET', 200, 0.01);
    m.digestMismatch('ghcr.io/acme/tool');
    m.httpRequest('end-3', 'BREW', 999, 0.01);
    for (const s of await samples(m)) {
      for (const [k, v] of Object.entries(s.labels)) assert.ok(!v.includes('/'), `${s.name}{${k}="${v}"}`);
    }
    assert.equal(await value(m, 'wharf_http_requests_total', { route: 'unmatched', method: 'GET', status: '200' }), 1);
    assert.equal(await value(m, 'wharf_http_requests_total', { route: 'end-3', method: 'OTHER', status: 'error' }), 1);
    assert.equal(await value(m, 'wharf_upstream_requests_total', { upstream: 'other', method: 'GET', status: '200' }), 1);
  });

  it('keeps label values bounded for any input string', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string(), fc.string(), fc.string(), async (route, method, upstream) => {
        const m = createMetrics({ collectDefault: false });
        m.httpRequest(route, method, 200, 0.001);
        m.request(upstream, method, 200, 0.001);
        for (const s of await samples(m)) {
          for (const v of Object.values(s.labels)) assert.match(v, /^[A-Za-z0-9_.:+-]{1,64}$/);
        }
      }),
      { numRuns: 50 },
    );
  });

  it('keeps two instances apart and stays off the global registry', async () => {
    const a = createMetrics();
    const b = createMetrics();
    a.cacheRequest('manifest', 'miss');
    a.httpRequest('end-1', 'GET', 200, 0.001);
    assert.equal(await value(a, 'wharf_cache_requests_total', { kind: 'manifest', outcome: 'miss' }), 1);
    assert.equal(await value(b, 'wharf_cache_requests_total', { kind: 'manifest', outcome: 'miss' }), 0);
    assert.equal(await value(b, 'wharf_http_requests_total', { route: 'end-1', method: 'GET', status: '200' }), undefined);
    assert.notEqual(a.registry, b.registry);
    assert.doesNotMatch(await globalRegister.metrics(), /wharf_/);
  });

  it('adds the default process metrics with the wharf_ prefix unless turned off', async () => {
    const names = new Set((await samples(createMetrics())).map((s) => s.name));
    assert.ok(names.has('wharf_process_cpu_user_seconds_total'));
    assert.ok(names.has('wharf_process_resident_memory_bytes'));
    assert.ok([...names].some((n) => n.startsWith('wharf_nodejs_')));
    const bare = new Set((await samples(createMetrics({ collectDefault: false }))).map((s) => s.name));
    assert.ok(![...bare].some((n) => n.startsWith('wharf_process_') || n.startsWith('wharf_nodejs_')));
  });

  it('exports only names listed in metricNames (besides the defaults)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-metrics-'));
    try {
      const m = createMetrics({ dataDir: dir, cacheMaxBytes: 1024, metadataDegraded: () => false });
      const known = new Set<string>(metricNames);
      for (const s of await samples(m)) {
        const base = s.name.replace(/_(bucket|sum|count)$/, '');
        if (/^wharf_(process|nodejs)_/.test(s.name)) continue;
        assert.ok(known.has(base) || known.has(s.name), `${s.name} missing from metricNames`);
      }
      // labelled series appear only once used; the HELP line shows the metric is registered
      const { body } = await m.render();
      for (const n of metricNames) assert.match(body, new RegExp(`^# HELP ${n} `, 'm'), `${n} listed but not registered`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads free space of the data dir at scrape time, and the configured maximum', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-metrics-'));
    try {
      const m = createMetrics({ collectDefault: false, dataDir: dir, cacheMaxBytes: 200 * 1024 ** 3 });
      const free = await value(m, 'wharf_data_free_bytes');
      const size = await value(m, 'wharf_data_size_bytes');
      assert.ok(free !== undefined && free > 0);
      assert.ok(size !== undefined && size >= free);
      assert.equal(await value(m, 'wharf_cache_max_bytes'), 200 * 1024 ** 3);
      // an unreadable data dir is unknown (NaN), never "0 bytes free"
      const gone = createMetrics({ collectDefault: false, dataDir: join(dir, 'missing') });
      assert.ok(Number.isNaN(await value(gone, 'wharf_data_free_bytes')));
      // no maxSize: no series, so an alert cannot divide by a made-up limit
      assert.equal(await value(createMetrics({ collectDefault: false }), 'wharf_cache_max_bytes'), undefined);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
