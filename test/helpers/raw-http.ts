/**
 * One HTTP/1.1 request over a bare socket, its body sent piece by piece when the test says so: races between
 * requests are tested as they really happen (headers of both sent, then body bytes interleaved), and a body
 * can be cut off or left short of its Content-Length, which Node's HTTP client will not do.
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  status: number;
  /** header names in lower case */
  headers: Record<string, string>;
  body: string;
}

export interface RawRequest {
  /** Sends body bytes; resolves once they are handed to the kernel (rejects when the server closed already). */
  send(bytes: Uint8Array): Promise<void>;
  /** Half-closes: no more bytes will come (a body shorter than its Content-Length ends here). */
  end(): void;
  /** Drops the connection, as a client that dies does. */
  cut(): void;
  /** true once the server's answer has begun to arrive */
  readonly answered: boolean;
  /** The server's answer, complete once it closes the connection; undefined when it closed without one. */
  readonly answer: Promise<RawAnswer | undefined>;
}

/** Opens a connection and sends the request line and headers (`Connection: close` added). */
export function rawRequest(port: number, method: string, path: string, headers: Record<string, string | number>): Promise<RawRequest> {
  return new Promise((resolve, reject) => {
    const sock: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let answered = false;
    const answer = new Promise<RawAnswer | undefined>((done) => {
      sock.on('data', (c: Buffer) => {
        answered = true;
        chunks.push(c);
      });
      sock.once('close', () => done(parse(Buffer.concat(chunks).toString('latin1'))));
    });
    sock.on('error', () => undefined); // a write after the server answered and closed: the answer tells
    sock.once('connect', () => {
      const head = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: close'];
      for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
      sock.write(`${head.join('\r\n')}\r\n\r\n`);
      resolve({
        send: (bytes) =>
          new Promise<void>((ok, fail) => {
            if (sock.destroyed || sock.writableEnded) return fail(new Error('connection closed'));
            sock.write(bytes, (e) => (e ? fail(e) : ok()));
          }),
        end: () => sock.end(),
        cut: () => sock.destroy(),
        get answered() {
          return answered;
        },
        answer,
      });
    });
    sock.once('error', reject);
  });
}

function parse(text: string): RawAnswer | undefined {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '')?.[1]);
  if (!Number.isInteger(status)) return undefined;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status, headers, body: text.slice(end + 4) };
}
