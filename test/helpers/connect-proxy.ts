import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenLoopback } from './ports.js';
import { connect, type Socket } from 'node:net';

/**
 * A minimal forward proxy, as HTTPS_PROXY / HTTP_PROXY point at: CONNECT tunnels (TLS stays end to end)
 * and absolute-form requests (`GET http://host:port/path`) for plain http. It records what it was asked
 * for, so a test can tell proxied traffic from direct traffic. Loopback only.
 */
export interface ConnectProxy {
  /** http://127.0.0.1:PORT, the value for HTTPS_PROXY / HTTP_PROXY */
  url: string;
  port: number;
  /** `host:port` of every CONNECT, in order */
  readonly connects: string[];
  /** `METHOD absolute-url` of every plain proxied request, in order */
  readonly requests: string[];
  /** Forgets what was recorded so far. */
  reset(): void;
  /** Closes the listener and every tunnel and connection still open. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ConnectProxyOptions {
  /** The proxy's own name resolution: `name → address`, tried before system DNS (a proxy often knows names its clients cannot resolve). */
  hosts?: Record<string, string>;
}

export async function startConnectProxy(opts: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const lookup = (host: string): string => opts.hosts?.[host.toLowerCase()] ?? host;
  const connects: string[] = [];
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const target = req.url ?? '';
    requests.push(`${req.method ?? 'GET'} ${target}`);
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      // origin-form: the client talked to us as if we were the server, not a proxy
      res.writeHead(400).end('absolute-form request expected');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const out = httpRequest(
      { host: lookup(url.hostname.replace(/^\[|\]$/g, '')), port: url.port || 80, method: req.method, path: `${url.pathname}${url.search}`, headers, agent: false },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.once('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(out);
  });
  server.on('connection', track);

  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    connects.push(target);
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target);
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const host = m[1]!.replace(/^\[|\]$/g, '');
    const upstream = connect(Number(m[2]), lookup(host));
    track(upstream);
    let established = false;
    upstream.once('connect', () => {
      established = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    const drop = (): void => {
      upstream.destroy();
      client.destroy();
    };
    upstream.once('error', () => {
      if (!established && !client.destroyed) {
        client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
        return;
      }
      drop();
    });
    client.once('error', drop);
    client.once('close', drop);
    upstream.once('close', () => {
      if (established) drop();
    });
  });

  const port = await listenLoopback(server);
  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connects,
    requests,
    reset() {
      connects.length = 0;
      requests.length = 0;
    },
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return stopped;
    },
  };
}
