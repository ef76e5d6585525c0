import { connect, createServer, type Socket } from 'node:net';
import { listenLoopback } from './ports.js';

/**
 * A TCP relay that can hold what its clients send for a while before passing it on, as a slow or congested
 * link to a server (e.g. one replica's path to Redis) would. Replies flow back at once. Bytes keep their order
 * whatever the delay is changed to. Loopback only.
 */
export interface TcpDelay {
  /** `127.0.0.1:PORT` */
  address: string;
  port: number;
  /** How long bytes from clients are held (ms); 0 relays them at once. Applies to bytes received from now on. */
  delayMs: number;
  /** Closes the listener and every relayed connection. */
  stop(): Promise<void>;
}

export async function startTcpDelay(target: { host: string; port: number }): Promise<TcpDelay> {
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const relay: TcpDelay = { address: '', port: 0, delayMs: 0, stop: async () => undefined };
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    track(upstream);
    for (const s of [client, upstream]) s.setNoDelay(true);
    // One queue per connection, drained in order: a chunk never overtakes the one before it, whatever the
    // delay is changed to.
    const queue: Array<{ at: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | undefined;
    const drain = (): void => {
      timer = undefined;
      while (queue.length > 0 && queue[0]!.at <= Date.now()) {
        const { chunk } = queue.shift()!;
        if (!upstream.destroyed) upstream.write(chunk);
      }
      if (queue.length > 0) timer = setTimeout(drain, queue[0]!.at - Date.now());
    };
    client.on('data', (chunk: Buffer) => {
      queue.push({ at: Math.max(Date.now() + relay.delayMs, queue.at(-1)?.at ?? 0), chunk });
      if (timer === undefined) drain();
    });
    client.once('close', () => clearTimeout(timer));
    upstream.pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  server.on('connection', track);
  const port = await listenLoopback(server);
  relay.port = port;
  relay.address = `127.0.0.1:${port}`;
  relay.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return relay;
}
