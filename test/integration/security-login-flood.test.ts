/**
 * A flood of wrong passwords must not buy the event loop (bcrypt is slow on purpose): past a burst of
 * failures an address gets 429 with Retry-After and no password check, while pulls go on.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basicHeader, request } from '../helpers/http.js';
import { makeImage, pushImage } from '../helpers/oci-image.js';
import { htpasswdFile } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { describeResponse, errorCodes, startWharf, type WharfProcess } from '../helpers/wharf.js';

const ALICE = { username: 'alice', password: 'alice-pw' };
const BURST = 20; // LOGIN_LIMITS.burst

let dir: TempDir;
let w: WharfProcess;

before(async () => {
  dir = await tempDir('wharf-flood-');
  const htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { alice: ALICE.password });
  w = await startWharf({ config: { upstreams: [], auth: { htpasswd, rules: [{ repositories: ['**'], users: ['alice'], actions: ['pull', 'push'] }] } } });
  await pushImage(w.url, 'apps/x', '1', makeImage(), ALICE);
});
after(async () => {
  await w?.stop();
  await dir?.cleanup();
});

describe('a flood of wrong passwords', () => {
  it('gets 401 for a burst, then 429 with Retry-After (even for the right password) while anonymous pulls are served', async () => {
    const wrong = { authorization: basicHeader({ ...ALICE, password: 'guess' }) };
    for (let i = 0; i < BURST; i++) {
      const res = await request(`${w.url}/v2/apps/x/tags/list`, { headers: wrong });
      assert.equal(res.status, 401, `attempt ${i + 1}: ${describeResponse(res)}`);
    }
    const held = await request(`${w.url}/v2/apps/x/tags/list`, { headers: wrong });
    assert.equal(held.status, 429, describeResponse(held));
    assert.deepEqual(errorCodes(held), ['TOOMANYREQUESTS']);
    assert.ok(Number(held.headers['retry-after']) >= 1, `Retry-After: ${held.headers['retry-after']}`);
    const right = await request(`${w.url}/token?service=wharf&scope=repository:apps/x:pull`, { headers: { authorization: basicHeader(ALICE) } });
    assert.equal(right.status, 429, `the token endpoint is held back too: ${describeResponse(right)}`);
    const anonymous = await request(`${w.url}/v2/apps/x/tags/list`);
    assert.equal(anonymous.status, 200, `anonymous pulls go on: ${describeResponse(anonymous)}`);

    await new Promise((r) => setTimeout(r, 1100)); // one refill
    const again = await request(`${w.url}/v2/apps/x/tags/list`, { headers: { authorization: basicHeader(ALICE) } });
    assert.equal(again.status, 200, `after a refill the right password works: ${describeResponse(again)}`);
  });
});
