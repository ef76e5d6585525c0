import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from '../helpers/http.js';
import { blobsOf, makeImage, sha256, writeOciLayout } from '../helpers/oci-image.js';
import { skopeo } from '../helpers/skopeo.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { fingerprint, makeCa, makeServerCert, tlsGet, type ServerCert, type TestCa } from '../helpers/tls.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

let dir: TempDir;
let ca1: TestCa;
let ca2: TestCa;
let cert1: ServerCert;
let cert2: ServerCert;
let w: WharfProcess;
/** the files wharf's tls.cert / tls.key point at: replaced in place for the reload tests */
let certFile: string;
let keyFile: string;
/** skopeo's --src-cert-dir / --dest-cert-dir: a directory whose *.crt files are trusted CAs */
let certDir: string;

before(async () => {
  dir = await tempDir('wharf-tls-');
  await Promise.all(['ca1', 'ca2', 'live', 'skopeo-certs'].map((d) => mkdir(join(dir.path, d))));
  [ca1, ca2] = await Promise.all([makeCa(join(dir.path, 'ca1'), 'wharf test CA one'), makeCa(join(dir.path, 'ca2'), 'wharf test CA two')]);
  [cert1, cert2] = await Promise.all([makeServerCert(ca1), makeServerCert(ca2)]);
  certFile = join(dir.path, 'live', 'cert.pem');
  keyFile = join(dir.path, 'live', 'key.pem');
  await copyFile(cert1.certPath, certFile);
  await copyFile(cert1.keyPath, keyFile);
  certDir = join(dir.path, 'skopeo-certs');
  await copyFile(ca1.certPath, join(certDir, 'ca.crt'));
  w = await startWharf({ config: { upstreams: [], tls: { cert: certFile, key: keyFile } }, https: { ca: [ca1.pem] } });
});
after(async () => {
  await w?.stop();
  await dir?.cleanup();
});

/** Waits until wharf's log has `message` `times` times (a reload is logged when it is done). */
async function logged(message: string, times: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (w.logs().split(message).length - 1 < times) {
    if (Date.now() > deadline) assert.fail(`"${message}" not logged ${times}×:\n${w.logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('HTTPS from tls.cert / tls.key', () => {
  it('serves the registry API over HTTPS to a client trusting the CA, and only over HTTPS', async () => {
    assert.ok(w.url.startsWith('https://'));
    const res = await tlsGet(`${w.url}/v2/`, { ca: [ca1.pem] });
    assert.equal(res.status, 200);
    assert.equal(res.fingerprint256, fingerprint(cert1.pem));
    await assert.rejects(tlsGet(`${w.url}/v2/`), /self-signed|unable to (get|verify)/i, 'a client without the CA refuses the certificate');
    // Plain HTTP on the TLS port gets no registry answer.
    const plain = await request(`http://${w.host}/v2/`, { timeoutMs: 5000 }).then((r) => r.status, (e: Error) => e.message);
    assert.notEqual(plain, 200);
  });

  it('skopeo pushes with --dest-cert-dir and pulls with --src-cert-dir (TLS verified), and refuses without the CA', async (t) => {
    const src = await tempDir();
    const out = await tempDir();
    t.after(() => Promise.all([src.cleanup(), out.cleanup()]));
    const img = makeImage({ format: 'oci', layers: 2 });
    const ref = await writeOciLayout(src.path, 'v1', img);

    await skopeo(['copy', '--dest-cert-dir', certDir, ref, `docker://${w.host}/tls/app:v1`]);
    await skopeo(['copy', '--src-cert-dir', certDir, `docker://${w.host}/tls/app:v1`, `dir:${out.path}`]);
    assert.deepEqual(await readFile(join(out.path, 'manifest.json')), img.manifest, 'manifest bytes as pushed');
    for (const b of blobsOf(img)) assert.equal(sha256(await readFile(join(out.path, b.digest.slice(7)))), b.digest);

    await assert.rejects(
      skopeo(['inspect', '--raw', `docker://${w.host}/tls/app:v1`]),
      /x509|certificate/i,
      'without the CA, TLS verification fails',
    );
  });
});

describe('SIGHUP reloads the certificate', () => {
  it('new connections get the new certificate, an open keep-alive connection stays up, a broken pair is refused', async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: [ca1.pem, ca2.pem] });
    t.after(() => agent.destroy());
    const first = await tlsGet(`${w.url}/v2/`, { agent });
    assert.equal(first.fingerprint256, fingerprint(cert1.pem));

    // Renewal: a certificate from another CA (another serial, another key).
    await copyFile(cert2.certPath, certFile);
    await copyFile(cert2.keyPath, keyFile);
    process.kill(w.pid as number, 'SIGHUP');
    await logged('tls certificate reloaded', 1);

    const again = await tlsGet(`${w.url}/v2/`, { agent });
    assert.equal(again.status, 200);
    assert.ok(again.reusedSocket, 'the keep-alive connection opened before the reload still answers');
    assert.equal(again.fingerprint256, fingerprint(cert1.pem), 'an open connection keeps its session');
    const fresh = await tlsGet(`${w.url}/v2/`, { ca: [ca2.pem] });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.fingerprint256, fingerprint(cert2.pem), 'a new connection sees the new certificate');

    // A key that does not belong to the certificate: logged, and the previous pair stays in service.
    await writeFile(keyFile, await readFile(cert1.keyPath));
    process.kill(w.pid as number, 'SIGHUP');
    await logged('tls reload failed', 1);
    const kept = await tlsGet(`${w.url}/v2/`, { ca: [ca2.pem] });
    assert.equal(kept.status, 200);
    assert.equal(kept.fingerprint256, fingerprint(cert2.pem));
    assert.ok(w.pid !== undefined && w.lastExit() === undefined, 'wharf is still running');
    assert.doesNotMatch(w.logs(), /PRIVATE KEY/, 'no key material in the log');
  });
});
