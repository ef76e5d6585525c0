import { connect, createServer, type Socket } from 'node:net';
import { listenLoopback } from '../helpers/ports.js';

export interface ByteCounter {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Bytes the target sent back (response headers and bodies) since the last reset. */
  readonly down: number;
  /** Bytes sent to the target (requests) since the last reset. */
  readonly up: number;
  reset(): void;
  /**
   * Limits the downstream direction (target → client) of all connections together to `bytesPerSecond`,
   * like one shared link; undefined lifts the limit. Applies to connections already open too.
   */
  throttle(bytesPerSecond: number | undefined): void;
  stop(): Promise<void>;
}

/** How far the link's clock may lag behind real time: timers fire late, and the time lost is made up (a 10 ms burst). */
const SLACK_MS = 10;

/**
 * A shared token bucket: each chunk reserves its slot on one virtual clock and is passed on when the
 * slot ends, so N connections share the rate however they interleave.
 */
class Link {
  rate: number | undefined;
  private next = 0;
  /** Milliseconds to hold a chunk of `n` bytes before passing it on. */
  reserve(n: number): number {
    if (this.rate === undefined) return 0;
    const now = performance.now();
    this.next = Math.max(this.next, now - SLACK_MS) + (n * 1000) / this.rate;
    return Math.max(0, this.next - now);
  }
}

/**
 * A TCP pass-through that counts bytes each way, and can throttle what the target sends. It sits
 * between a mirror (or a client pulling directly) and the upstream, so the figure is what really crossed
 * the wire (headers, 401s and retries included).
 */
export async function startByteCounter(targetPort: number): Promise<ByteCounter> {
  let down = 0;
  let up = 0;
  const link = new Link();
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    // A relay re-segments what it passes on. With Nagle on (net's default), the tail of a 64 KiB chunk (on
    // loopback one full segment plus 53 bytes) waits for the receiver's delayed ACK: ~40 ms stalls in 4 of
    // 18 sequential 256 KiB GETs by undici (wharf's upstream client) in a probe, none with TCP_NODELAY. The
    // link models bandwidth, not that; relays in front of real registries (nginx, HAProxy) send at once too.
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (b: Buffer) => {
      up += b.length;
    });
    client.pipe(upstream);
    upstream.on('data', (b: Buffer) => {
      down += b.length;
      const wait = link.reserve(b.length);
      if (wait < 1) {
        if (!client.write(b)) {
          upstream.pause();
          client.once('drain', () => upstream.resume());
        }
        return;
      }
      // Held for its slot on the shared link; the target is paused meanwhile, as a full TCP window would.
      upstream.pause();
      setTimeout(() => {
        if (client.destroyed) return;
        if (client.write(b)) upstream.resume();
        else client.once('drain', () => upstream.resume());
      }, wait);
    });
    const abort = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.once('error', abort);
    upstream.once('error', abort);
    let pending = 0;
    // A clean close from the upstream (Connection: close) ends the client after the last byte was passed on.
    upstream.once('end', () => {
      const finish = (): void => {
        if (pending === 0 && upstream.readableEnded) client.end();
      };
      // The last chunk may still be held by the throttle: end after it.
      const wait = link.reserve(0);
      pending++;
      setTimeout(() => {
        pending--;
        finish();
      }, wait);
    });
    upstream.once('close', (hadError) => {
      sockets.delete(upstream);
      if (hadError) client.destroy();
    });
    client.once('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
  });
  const port = await listenLoopback(server);
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
    throttle(bytesPerSecond) {
      link.rate = bytesPerSecond;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
