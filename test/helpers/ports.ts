import { createServer, type AddressInfo, type Server } from 'node:net';
import { request } from 'node:http';

/**
 * A port that was free a moment ago. Only for processes that must be told their port up front
 * (docker-registry); anything we start ourselves listens on port 0 instead.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: no port assigned'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

/** Listens on a run-time port on 127.0.0.1 (tests never listen elsewhere); resolves with the port. */
export function listenLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** One GET; resolves with the status (any status means the server is up), rejects on connection errors. */
function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy(new Error('probe timeout')));
    req.once('error', reject);
    req.end();
  });
}

/**
 * Polls `url` every 20 ms until it answers with any HTTP status. `alive` lets a caller stop early
 * (e.g. the child process died), so a crash is reported at once instead of after the timeout.
 */
export async function waitForHttp(
  url: string,
  timeoutMs = 10_000,
  alive: () => boolean = () => true,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    if (!alive()) throw new Error(`waitForHttp ${url}: process exited before answering`);
    try {
      return await probe(url);
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`waitForHttp ${url}: no answer within ${timeoutMs} ms (${String(last)})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
