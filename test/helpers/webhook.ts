import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { request } from './http.js';
import { sha256 } from './oci-image.js';
import { listenLoopback } from './ports.js';

/** One request a webhook receiver got. */
export interface Delivery {
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** parsed `events` (distribution format) or the one CloudEvent's `data` */
  events: Array<Record<string, any>>;
}

/** ok: answer 200; fail: answer 503; hang: never answer (the sender must time out). */
export type ReceiverMode = 'ok' | 'fail' | 'hang';

export interface WebhookReceiver {
  url: string;
  deliveries: Delivery[];
  /** every event received, in arrival order (repeats included) */
  events(): Array<Record<string, any>>;
  mode: ReceiverMode;
  /** answers tried while failing or hanging */
  refused: number;
  /** Waits until `pred` holds over the events received (bounded). */
  waitFor(pred: (events: Array<Record<string, any>>) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  stop(): Promise<void>;
}

/** A real HTTP server on loopback that records what wharf (or Distribution) POSTs to it. */
export async function startReceiver(mode: ReceiverMode = 'ok'): Promise<WebhookReceiver> {
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  const r: WebhookReceiver = {
    url: '',
    deliveries: [],
    mode,
    refused: 0,
    events: () => r.deliveries.flatMap((d) => d.events),
    async waitFor(pred, timeoutMs = 30_000, what = 'events') {
      const deadline = Date.now() + timeoutMs;
      while (!pred(r.events())) {
        if (Date.now() > deadline) throw new Error(`webhook receiver: timed out waiting for ${what}; got ${JSON.stringify(r.events().map((e) => [e.action, e.target?.digest ?? e.target?.tag]))}`);
        await new Promise((res) => setTimeout(res, 25));
      }
    },
    async stop() {
      for (const res of hanging) res.destroy();
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (r.mode === 'hang') {
        r.refused++;
        hanging.add(res);
        return;
      }
      if (r.mode === 'fail') {
        r.refused++;
        res.statusCode = 503;
        res.end();
        return;
      }
      const body = Buffer.concat(chunks);
      const parsed = JSON.parse(body.toString('utf8')) as Record<string, any>;
      const events = Array.isArray(parsed.events) ? parsed.events : [parsed.data];
      r.deliveries.push({ headers: req.headers, body, events });
      res.end();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const port = await listenLoopback(server);
  r.url = `http://127.0.0.1:${port}/events`;
  return r;
}

/** What a receiver does with `X-Wharf-Signature: sha256=<hex>`: recompute the HMAC over the raw body. */
export function verifySignature(secret: string, body: Buffer, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const want = createHmac('sha256', secret).update(body).digest();
  const got = Buffer.from(header.slice('sha256='.length), 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Pushes one random blob (monolithic POST): one `push` event; resolves with its digest once answered 201. */
export async function pushBlob(base: string, repo: string): Promise<string> {
  const bytes = randomBytes(64);
  const digest = sha256(bytes);
  const res = await request(`${base}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
  if (res.status !== 201) throw new Error(`push blob: HTTP ${res.status} ${res.body.toString().slice(0, 300)}`);
  return digest;
}
