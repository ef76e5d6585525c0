import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HealthRecord } from '../../src/upstream/health.js';

describe('upstream HealthRecord', () => {
  it('unknown until a request, failing after an error or a 5xx, ok again with the next answer', () => {
    let t = 1000;
    const h = new HealthRecord(() => t);
    assert.deepEqual(h.read(), { state: 'unknown', failures: 0 });
    h.failed('upstream hub unreachable (manifest: ECONNREFUSED)');
    t = 2000;
    h.answered(503);
    assert.deepEqual(h.read(), { state: 'failing', failures: 2, lastError: { at: 2000, message: 'HTTP 503' } });
    h.answered(404); // an answer, even a "not found", is contact
    assert.deepEqual(h.read(), { state: 'ok', failures: 0, lastSuccess: 2000, lastError: { at: 2000, message: 'HTTP 503' } });
    h.answered(429);
    assert.equal(h.read().state, 'ok', 'a 429 is an answer (the rate limit shows beside it)');
    h.failed('upstream fetch timed out'); // same millisecond as the answer before it: still the latest
    assert.equal(h.read().state, 'failing');
  });
});
