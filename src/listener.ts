import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { ServerConfig, TlsConfig } from './config/types.js';
import { parseHostPort } from './config/index.js';
import type { Logger } from './observability/types.js';

export type WharfServer = HttpServer | HttpsServer;

export interface Listener {
  server: WharfServer;
  /**
   * Re-reads tls.cert and tls.key and serves them to new connections; open connections keep theirs.
   * A pair that does not load (missing, unparsable, key not matching) is logged and the old one kept.
   * false without TLS or on failure.
   */
  reloadTls(): Promise<boolean>;
}

export interface ListenerOptions {
  timeouts: Pick<ServerConfig, 'headersTimeout' | 'idleTimeout' | 'keepAliveTimeout'>;
  /** absent: plain HTTP */
  tls?: TlsConfig;
  logger: Logger;
}

/**
 * Node enforces headersTimeout only when it sweeps its connection list, every
 * connectionsCheckingInterval (30 s by default), so a 10 s headersTimeout could let a slow client hold
 * its connection for 40 s. Sweep at a tenth of the timeout: overshoot stays within 10 %.
 */
export function checkingInterval(headersTimeout: number): number {
  return Math.min(30_000, Math.max(100, Math.floor(headersTimeout / 10)));
}

/** The certificate and key files as a server would use them; throws with a message fit for the log. */
async function loadPair(tls: TlsConfig): Promise<{ options: SecureContextOptions; certificate: Record<string, string> }> {
  const [cert, key] = await Promise.all([readFile(tls.cert), readFile(tls.key)]);
  // Throws on an unparsable certificate or key, or a key that does not belong to the certificate.
  createSecureContext({ cert, key });
  const x = new X509Certificate(cert);
  return {
    options: { cert, key },
    certificate: { subject: x.subject.replace(/\n/g, ', '), serial: x.serialNumber, notAfter: x.validTo, sha256: x.fingerprint256 },
  };
}

/**
 * An http or https server for `handler`. Multi-GiB transfers: no total request timeout; header and idle
 * timeouts instead, and keep-alive longer than common load-balancer idle timeouts (60 s) so the balancer
 * closes first.
 */
export async function createListener(handler: RequestListener, opts: ListenerOptions): Promise<Listener> {
  const { timeouts, logger, tls } = opts;
  const httpOptions = {
    requestTimeout: 0,
    headersTimeout: timeouts.headersTimeout,
    connectionsCheckingInterval: checkingInterval(timeouts.headersTimeout),
  };
  let server: WharfServer;
  let reloadTls: () => Promise<boolean> = async () => false;
  if (tls) {
    const pair = await loadPair(tls);
    // A client that never finishes its TLS handshake is held no longer than one that never finishes its headers.
    const https = createHttpsServer({ ...httpOptions, ...pair.options, handshakeTimeout: timeouts.headersTimeout }, handler);
    server = https;
    logger.info({ certificate: pair.certificate }, 'tls certificate loaded');
    let queue = Promise.resolve(true);
    const reload = async (): Promise<boolean> => {
      try {
        const next = await loadPair(tls);
        https.setSecureContext(next.options);
        logger.info({ certificate: next.certificate }, 'tls certificate reloaded');
        return true;
      } catch (e) {
        logger.error({ err: (e as Error).message, cert: tls.cert, key: tls.key }, 'tls reload failed; still serving the previous certificate');
        return false;
      }
    };
    // Two SIGHUPs in a row: the second reload starts after the first, so the newest files win.
    reloadTls = () => (queue = queue.then(reload, reload));
  } else {
    server = createHttpServer(httpOptions, handler);
  }
  server.timeout = timeouts.idleTimeout;
  server.keepAliveTimeout = timeouts.keepAliveTimeout;
  return { server, reloadTls: () => reloadTls() };
}

export function listen(server: WharfServer, address: string): Promise<void> {
  const { host, port } = parseHostPort(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting, lets in-flight requests finish (bounded), then closes what is left. */
export async function drain(server: WharfServer, timeoutMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
  await closed;
  clearTimeout(timer);
}
