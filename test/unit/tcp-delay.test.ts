/** The slow-link relay the cluster tests put between a replica and Redis must never reorder bytes. */
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { listenLoopback } from '../helpers/ports.js';
import { startTcpDelay } from '../helpers/tcp-delay.js';

describe('tcp-delay relay', () => {
  it('keeps the byte order while its delay is lowered mid-stream, and holds bytes for the delay', async (t) => {
    let got = '';
    let firstAt = 0;
    const sink = createServer((s) =>
      s.on('data', (d: Buffer) => {
        if (got === '') firstAt = Date.now();
        got += d.toString();
      }),
    );
    const port = await listenLoopback(sink);
    const relay = await startTcpDelay({ host: '127.0.0.1', port });
    t.after(async () => {
      await relay.stop();
      await new Promise((r) => sink.close(r));
    });
    const c = connect(relay.port, '127.0.0.1');
    c.setNoDelay(true);
    await new Promise((r) => c.once('connect', r));
    t.after(() => c.destroy());
    const letters = 'abcdefghijklmnopqrst';
    const sentAt = Date.now();
    for (let i = 0; i < letters.length; i++) {
      relay.delayMs = 100 - i * 5; // each chunk would be due earlier than the one before it
      c.write(letters[i]!);
      await new Promise((r) => setTimeout(r, 1));
    }
    const deadline = Date.now() + 2000;
    while (got.length < letters.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(got, letters);
    assert.ok(firstAt - sentAt >= 95, `the first byte was held ${firstAt - sentAt} ms, not 100`);
  });
});
