import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ByteCounter {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Bytes the target sent back (response headers and bodies) since the last reset. */
  readonly down: number;
  /** Bytes sent to the target (requests) since the last reset. */
  readonly up: number;
  reset(): void;
  stop(): Promise<void>;
}

/**
 * A TCP pass-through that counts bytes each way. It sits between a mirror and its upstream, so the
 * figure is what really crossed the wire (headers, 401s and retries included), whatever the mirror
 * or the fault proxy behind it do with Content-Length.
 */
export async function startByteCounter(targetPort: number): Promise<ByteCounter> {
  let down = 0;
  let up = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (b: Buffer) => {
      up += b.length;
    });
    upstream.on('data', (b: Buffer) => {
      down += b.length;
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const abort = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.once('error', abort);
    upstream.once('error', abort);
    // A clean close from the upstream (Connection: close) was already passed on by pipe() as an end
    // after the last byte; destroying the client here would drop bytes still buffered for it.
    upstream.once('close', (hadError) => {
      sockets.delete(upstream);
      if (hadError) client.destroy();
    });
    client.once('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let stopped = false;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get down() {
      return down;
    },
    get up() {
      return up;
    },
    reset() {
      down = 0;
      up = 0;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
