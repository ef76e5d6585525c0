/** Under TLS the web UI's session cookie is also `Secure`. */
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { htpasswdFile } from '../helpers/registry.js';
import { makeCa, makeServerCert, type TestCa } from '../helpers/tls.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

let dir: TempDir;
let ca: TestCa;
let w: WharfProcess;

before(async () => {
  dir = await tempDir('wharf-ui-tls-');
  ca = await makeCa(dir.path);
  const cert = await makeServerCert(ca);
  const htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { alice: 'alice-pw' });
  w = await startWharf({ config: { upstreams: [], tls: { cert: cert.certPath, key: cert.keyPath }, auth: { htpasswd } }, https: { ca: [ca.pem] } });
});
after(async () => {
  await w?.stop();
  await dir?.cleanup();
});

it('the session cookie is Secure, HttpOnly and SameSite=Strict over HTTPS', async () => {
  const body = JSON.stringify({ username: 'alice', password: 'alice-pw' });
  const res = await new Promise<{ status: number; cookie: string }>((resolve, reject) => {
    const req = httpsRequest(
      `${w.url}/_wharf/api/session`,
      { method: 'POST', ca: [ca.pem], agent: false, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-wharf-csrf': 'login' } },
      (r) => {
        r.resume();
        r.once('end', () => resolve({ status: r.statusCode ?? 0, cookie: (r.headers['set-cookie'] ?? []).join('\n') }));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('no answer')));
    req.once('error', reject);
    req.end(body);
  });
  assert.equal(res.status, 200);
  assert.match(res.cookie, /^wharf_session=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure$/);
});
