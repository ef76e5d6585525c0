import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenLoopback } from './ports.js';

export type FaultAction =
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  | { kind: 'delay'; ms: number }
  /** Sends the real headers (Content-Length included) and `afterBytes` body bytes, then destroys the socket. */
  | { kind: 'truncate'; afterBytes: number }
  /** Flips bytes of the real body; length and headers unchanged. */
  | { kind: 'corrupt' }
  /** Added to (or replacing same-named) headers of the real response, e.g. ratelimit-remaining. */
  | { kind: 'headers'; headers: Record<string, string> }
  /** Destroys the client connection without any response (a reset upstream). */
  | { kind: 'drop' }
  /** Passes the real response on, its body at about this many bytes a second (a slow link to the upstream). */
  | { kind: 'pace'; bytesPerSecond: number };

export interface FaultRule {
  match: { method?: string; path?: RegExp | string };
  /** How many requests the rule applies to; unlimited when omitted. */
  times?: number;
  action: FaultAction;
}

export interface ProxiedRequest {
  method: string;
  /** Path without query string. */
  path: string;
  /** Status sent to the client; 0 while pending or when the connection was dropped. */
  status: number;
  /** Date.now() when the request arrived. */
  at: number;
  /** The fault applied, if any. */
  fault?: FaultAction['kind'];
  /** Request headers as received (lower-case names), e.g. to see a Range or Authorization header. */
  headers?: Record<string, string>;
}

export interface RequestFilter {
  method?: string;
  /** A string matches the whole path; a RegExp is tested against it. */
  path?: RegExp | string;
}

export interface FaultProxy {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT */
  host: string;
  port: number;
  requests: ProxiedRequest[];
  count(filter?: RequestFilter): number;
  /** Forgets recorded requests (faults stay). */
  reset(): void;
  inject(rule: FaultRule): void;
  clearFaults(): void;
  stop(): Promise<void>;
}

function matches(filter: RequestFilter, method: string, path: string): boolean {
  if (filter.method !== undefined && filter.method.toUpperCase() !== method) return false;
  if (filter.path === undefined) return true;
  return typeof filter.path === 'string' ? filter.path === path : filter.path.test(path);
}

/** Raw header list with `extra` replacing same-named entries. */
function withHeaders(raw: string[], extra: Record<string, string> | undefined): string[] {
  if (extra === undefined) return raw;
  const names = new Set(Object.keys(extra).map((k) => k.toLowerCase()));
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!names.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  }
  for (const [k, v] of Object.entries(extra)) out.push(k, v);
  return out;
}

/**
 * A transparent HTTP proxy in front of one upstream that records every request and injects faults.
 * The Host header is forwarded as the client sent it, so the registry builds upload Locations that
 * point back through the proxy; everything else (Range, Location, bodies) passes untouched.
 */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  let rules: Array<FaultRule & { left: number }> = [];

  const take = (method: string, path: string): FaultAction | undefined => {
    const rule = rules.find((r) => r.left > 0 && matches(r.match, method, path));
    if (rule === undefined) return undefined;
    rule.left--;
    return rule.action;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, rec: ProxiedRequest, fault: FaultAction | undefined): void => {
    const up = httpRequest({
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: [...req.rawHeaders],
      agent: false,
    });
    req.pipe(up);
    res.once('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    up.once('error', () => {
      if (!res.headersSent) {
        rec.status = 502;
        res.writeHead(502, { 'content-type': 'text/plain' }).end('fault-proxy: upstream unreachable');
      } else {
        res.destroy();
      }
    });
    up.once('response', (ures) => {
      const status = ures.statusCode ?? 502;
      rec.status = status;
      res.writeHead(status, withHeaders(ures.rawHeaders, fault?.kind === 'headers' ? fault.headers : undefined));
      if (fault?.kind === 'truncate') {
        let left = fault.afterBytes;
        const cut = (): void => {
          ures.destroy();
          // Wait until what was allowed reached the kernel, then cut the connection mid-body.
          res.write(Buffer.alloc(0), () => res.destroy());
        };
        if (left <= 0) {
          res.flushHeaders();
          cut();
          return;
        }
        ures.on('data', (chunk: Buffer) => {
          if (left <= 0) return;
          const part = chunk.subarray(0, left);
          left -= part.length;
          res.write(part);
          if (left <= 0) cut();
        });
        ures.once('end', () => {
          if (left > 0) res.end();
        });
        return;
      }
      if (fault?.kind === 'corrupt') {
        ures.on('data', (chunk: Buffer) => {
          const copy = Buffer.from(chunk);
          for (let i = 0; i < copy.length; i += 512) copy[i] = copy[i]! ^ 0xff;
          if (!res.write(copy)) {
            ures.pause();
            res.once('drain', () => ures.resume());
          }
        });
        ures.once('end', () => res.end());
        return;
      }
      if (fault?.kind === 'pace') {
        // A tenth of the rate every 100 ms; stops when either side goes.
        const slice = Math.max(1, Math.floor(fault.bytesPerSecond / 10));
        void (async () => {
          try {
            for await (const chunk of ures as AsyncIterable<Buffer>) {
              for (let i = 0; i < chunk.length; i += slice) {
                if (res.destroyed) return void ures.destroy();
                res.write(chunk.subarray(i, i + slice));
                await new Promise((r) => setTimeout(r, 100));
              }
            }
            res.end();
          } catch {
            res.destroy();
          }
        })();
        return;
      }
      ures.pipe(res);
    });
  };

  const server = createServer((req, res) => {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = (req.url ?? '/').split('?')[0]!;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    const rec: ProxiedRequest = { method, path, status: 0, at: Date.now(), headers };
    requests.push(rec);
    const fault = take(method, path);
    if (fault !== undefined) rec.fault = fault.kind;
    switch (fault?.kind) {
      case 'status': {
        req.resume();
        rec.status = fault.status;
        const body = Buffer.from(fault.body ?? '');
        res.writeHead(fault.status, { 'content-length': String(body.length), ...(fault.headers ?? {}) });
        res.end(method === 'HEAD' ? undefined : body);
        return;
      }
      case 'drop':
        req.resume();
        req.socket.destroy();
        return;
      case 'delay': {
        const t = setTimeout(() => forward(req, res, rec, fault), fault.ms);
        res.once('close', () => clearTimeout(t));
        return;
      }
      default:
        forward(req, res, rec, fault);
    }
  });
  const port = await listenLoopback(server);

  let stopped = false;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    requests,
    count(filter = {}) {
      return requests.filter((r) => matches(filter, r.method, r.path)).length;
    },
    reset() {
      requests.length = 0;
    },
    inject(rule) {
      rules.push({ ...rule, left: rule.times ?? Number.POSITIVE_INFINITY });
    },
    clearFaults() {
      rules = [];
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
    },
  };
}
