import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hitRatio, trafficFrom } from '../../src/cli/stats.js';
import { createMetrics } from '../../src/observability/metrics.js';

const root = join(import.meta.dirname, '..', '..');
const read = (p: string) => readFileSync(join(root, p), 'utf8');

/** Issue 17 item 7: every place that shows a hit ratio uses one definition (everything but miss / all). */
describe('hit ratio: one definition everywhere', () => {
  it('dashboard, alert rule and README select the non-miss outcomes, never a list of "hit" outcomes', () => {
    for (const file of ['deploy/grafana/dashboard.json', 'deploy/prometheus/alerts.yml', 'README.md']) {
      const text = read(file).replace(/\\"/g, '"');
      const selectors = [...text.matchAll(/wharf_cache_requests_total\{([^}]*)\}/g)].map((m) => m[1]!);
      const ratio = selectors.filter((s) => s.includes('outcome'));
      assert.ok(ratio.length > 0, `${file} shows no hit ratio`);
      for (const s of ratio) assert.equal(s, 'outcome!="miss"', `${file}: {${s}}`);
    }
  });

  it('wharf stats reads the same ratio and the spared bytes from /metrics', async () => {
    const m = createMetrics({ collectDefault: false });
    m.cacheRequest('tag', 'hit');
    m.cacheRequest('blob', 'coalesced');
    m.cacheRequest('tag', 'stale');
    m.cacheRequest('blob', 'miss');
    m.bytesServed('hit', 100);
    m.bytesServed('miss', 50);
    const t = trafficFrom((await m.render()).body);
    assert.equal(hitRatio(t), 0.75);
    assert.equal(t.bytesSpared, 100);
    assert.equal(t.bytesFromUpstream, 50);
    assert.equal(hitRatio({ hits: 0, requests: 0 }), undefined);
  });
});
