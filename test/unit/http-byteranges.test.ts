import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { byteranges, slice } from '../../src/http/byteranges.js';
import { resolveRanges } from '../../src/oci/ranges.js';

const collect = async (s: Readable): Promise<Buffer> => {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
};

/** The blob in chunks of `size` bytes, as a file or an upstream delivers it. */
const chunked = (blob: Buffer, size: number): Readable => Readable.from(Array.from({ length: Math.ceil(blob.length / size) }, (_, i) => blob.subarray(i * size, (i + 1) * size)));

test('parts are cut right whatever the chunking, and the declared length is the body length', async () => {
  const blob = randomBytes(10_000);
  const ranges = resolveRanges([{ start: 0, end: 0 }, { start: 7, end: 4095 }, { start: 4096, end: 4096 }, { suffix: 3 }], blob.length)!;
  for (const size of [1, 7, 4096, 10_000]) {
    const m = byteranges(chunked(blob, size), ranges, blob.length, 'ab'.repeat(32), 'application/octet-stream');
    const body = await collect(m.stream);
    assert.equal(body.length, m.length, `chunks of ${size}`);
    const boundary = m.contentType.split('boundary=')[1]!;
    const expected = Buffer.concat(
      ranges.flatMap((r, i) => [
        Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${r.start}-${r.end}/10000\r\n\r\n`),
        blob.subarray(r.start, r.end + 1),
      ]).concat(Buffer.from(`\r\n--${boundary}--\r\n`)),
    );
    assert.ok(body.equals(expected), `chunks of ${size}`);
    assert.ok((await collect(slice(chunked(blob, size), { start: 5, end: 9000 }))).equals(blob.subarray(5, 9001)));
  }
});

test('multi-range resolution follows Go: drop unsatisfiable, whole blob when the parts cost more', () => {
  assert.deepEqual(resolveRanges([{ start: 0, end: 1 }, { start: 3, end: 4 }], 10), [{ start: 0, end: 1 }, { start: 3, end: 4 }]);
  assert.deepEqual(resolveRanges([{ start: 0, end: 1 }, { start: 30 }], 10), [{ start: 0, end: 1 }]);
  assert.equal(resolveRanges([{ start: 0, end: 5 }, { start: 3, end: 9 }], 10), undefined, 'overlapping');
  assert.equal(resolveRanges([{ start: 5, end: 6 }, { start: 0, end: 1 }], 10), undefined, 'backwards');
  assert.equal(resolveRanges(Array.from({ length: 65 }, (_, i) => ({ start: i * 2, end: i * 2 })), 1000), undefined, 'too many parts');
  assert.throws(() => resolveRanges([{ start: 10 }, { suffix: 0 }], 10), /not satisfiable/);
});
