import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { batched } from '../../src/core/blob-fetch.js';

async function collect(it: AsyncIterable<Buffer[]>): Promise<Buffer[][]> {
  const out: Buffer[][] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('batched (upstream body → cache write batches)', () => {
  it('hands over the chunks that arrived, as they are (never joined), and every byte once', async () => {
    const body = new PassThrough();
    const chunks: Buffer[] = [Buffer.from('aaa'), Buffer.from('bb'), Buffer.from('c')];
    for (const c of chunks) body.write(c);
    body.end();
    const batches = await collect(batched(body));
    assert.deepEqual(Buffer.concat(batches.flat()), Buffer.concat(chunks));
    // The same Buffer objects the stream delivered: no copy was made to join them.
    assert.ok(batches.flat().every((b) => chunks.includes(b)));
  });

  it('rejects a body that failed before it was read, instead of waiting forever', async () => {
    const body = new PassThrough();
    body.on('error', () => {});
    body.destroy(new Error('upstream reset'));
    await new Promise((r) => setImmediate(r));
    await assert.rejects(collect(batched(body)), /upstream reset/);
  });

  it('rejects a body that closed without ending', async () => {
    const body = new PassThrough();
    body.write(Buffer.from('partial'));
    setImmediate(() => body.destroy());
    await assert.rejects(collect(batched(body)), /closed early/);
  });
});
