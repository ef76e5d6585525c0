import assert from 'node:assert/strict';
import { test } from 'node:test';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { isRegistryError } from '../../src/oci/index.js';
import { mapStorageError } from '../../src/store/blob/s3-client.js';

/** An error as the SDK builds it from an S3 error response (its own exception class, status in $metadata). */
function s3Error(name: string, status: number, headers: Record<string, string> = {}): S3ServiceException {
  const e = new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message: `${name} happened` });
  (e as unknown as { $response: unknown }).$response = { statusCode: status, headers };
  return e;
}

test('throttling becomes 503 UNAVAILABLE with Retry-After (from the response when it has one)', () => {
  for (const [e, after] of [
    [s3Error('SlowDown', 503), '1'],
    [s3Error('ServiceUnavailable', 503, { 'retry-after': '7' }), '7'],
    [s3Error('TooManyRequests', 429), '1'],
  ] as const) {
    const mapped = mapStorageError(e, 'get', () => assert.fail('not a denial'));
    assert.ok(isRegistryError(mapped) && mapped.code === 'UNAVAILABLE' && mapped.status === 503, String(mapped));
    assert.equal(mapped.headers['Retry-After'], after);
  }
});

test('a refused credential is reported to the operator and becomes a server error (500), not a client error', () => {
  const denied: string[] = [];
  const mapped = mapStorageError(s3Error('AccessDenied', 403), 'put', (op, m) => denied.push(`${op}: ${m}`));
  assert.ok(!isRegistryError(mapped) && mapped instanceof Error);
  assert.match(mapped.message, /object storage denied put \(AccessDenied\)/);
  assert.deepEqual(denied, ['put: AccessDenied: AccessDenied happened']);
});

test('other failures pass through unchanged', () => {
  const e = s3Error('InternalError', 500);
  assert.equal(mapStorageError(e, 'get', () => {}), e);
});
