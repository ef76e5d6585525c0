import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest, type Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A private certificate authority made with openssl (Node 20 cannot create X.509 certificates). */
export interface TestCa {
  certPath: string;
  keyPath: string;
  /** the CA certificate, PEM: what a client is given to trust */
  pem: string;
  dir: string;
}

export interface ServerCert {
  certPath: string;
  keyPath: string;
  /** leaf certificate, PEM */
  pem: string;
}

export interface ServerCertOptions {
  /** subjectAltName IP entries (default `127.0.0.1`) */
  ips?: string[];
  /** subjectAltName DNS entries */
  dns?: string[];
  /** file name stem inside the CA's directory (default `server`) */
  name?: string;
}

// P-256 keys: generated in milliseconds, unlike RSA, and every TLS stack here accepts them.
const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA in `dir` (`ca.pem`, `ca.key`), valid for a day. */
export async function makeCa(dir: string, cn = 'wharf test CA'): Promise<TestCa> {
  const certPath = join(dir, 'ca.pem');
  const keyPath = join(dir, 'ca.key');
  await run('openssl', [
    'req', '-x509', ...KEY, '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { certPath, keyPath, pem: await readFile(certPath, 'utf8'), dir };
}

/** A server certificate signed by `ca` for the given IPs and DNS names (subjectAltName; CN is not used by clients). */
export async function makeServerCert(ca: TestCa, opts: ServerCertOptions = {}): Promise<ServerCert> {
  const name = opts.name ?? 'server';
  const keyPath = join(ca.dir, `${name}.key`);
  const csrPath = join(ca.dir, `${name}.csr`);
  const certPath = join(ca.dir, `${name}.pem`);
  const extPath = join(ca.dir, `${name}.ext`);
  const san = [...(opts.ips ?? ['127.0.0.1']).map((ip) => `IP:${ip}`), ...(opts.dns ?? []).map((d) => `DNS:${d}`)];
  await writeFile(
    extPath,
    [
      `subjectAltName=${san.join(',')}`,
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await run('openssl', ['req', '-new', ...KEY, '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${opts.dns?.[0] ?? opts.ips?.[0] ?? '127.0.0.1'}`]);
  await run('openssl', [
    'x509', '-req', '-in', csrPath, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-CAcreateserial',
    '-out', certPath, '-days', '1', '-extfile', extPath,
  ]);
  return { certPath, keyPath, pem: await readFile(certPath, 'utf8') };
}

export interface TlsResponse {
  status: number;
  body: Buffer;
  /** SHA-256 fingerprint of the certificate the server presented (`AB:CD:…`) */
  fingerprint256: string;
  /** the request went over a connection an earlier request had opened (keep-alive) */
  reusedSocket: boolean;
}

/** One HTTPS GET trusting `ca`; with `agent` (keep-alive) connections are reused across calls. */
export function tlsGet(url: string, opts: { ca?: string[]; agent?: Agent; timeoutMs?: number } = {}): Promise<TlsResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: opts.ca, agent: opts.agent ?? false }, (res) => {
      const fingerprint256 = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), fingerprint256, reusedSocket: req.reusedSocket }));
    });
    const timeout = opts.timeoutMs ?? 10_000;
    req.setTimeout(timeout, () => req.destroy(new Error(`GET ${url}: no answer within ${timeout} ms`)));
    req.once('error', reject);
    req.end();
  });
}

/** The SHA-256 fingerprint of a PEM certificate, as TLS peers report it. */
export function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
