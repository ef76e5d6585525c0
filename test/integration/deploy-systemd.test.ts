/**
 * deploy/wharf.service allows only the address families its RestrictAddressFamilies= names. wharf with Redis
 * must start under exactly that restriction (a seccomp filter built from the unit's line, as systemd does).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { deleteKeys, REDIS_URL, testPrefix } from '../helpers/redis.js';
import { restrictAddressFamilies } from '../helpers/seccomp.js';
import { startWharf } from '../helpers/wharf.js';

const unit = readFileSync(new URL('../../deploy/wharf.service', import.meta.url), 'utf8');
const families = (/^RestrictAddressFamilies=(.+)$/m.exec(unit)?.[1] ?? '').trim().split(/\s+/);
const wrap = restrictAddressFamilies(families);
const keyPrefix = testPrefix();

after(() => deleteKeys(REDIS_URL, keyPrefix));

describe('deploy/wharf.service address families', () => {
  it('the unit allows no AF_NETLINK, and the filter standing in for it really denies it', () => {
    assert.deepEqual(families.slice().sort(), ['AF_INET', 'AF_INET6', 'AF_UNIX']);
    const probe = "require('os').networkInterfaces(); require('net').createServer().listen(0, '127.0.0.1', function () { this.close(); console.log('tcp ok') })";
    const free = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' });
    assert.equal(free.status, 0, free.stderr);
    const filtered = spawnSync(wrap[0]!, [...wrap.slice(1), process.execPath, '-e', probe], { encoding: 'utf8' });
    assert.notEqual(filtered.status, 0, 'networkInterfaces() must fail under the filter');
    assert.match(filtered.stderr, /uv_interface_addresses returned Unknown system error 97/);
    const inet = spawnSync(wrap[0]!, [...wrap.slice(1), process.execPath, '-e', probe.replace("require('os').networkInterfaces(); ", '')], { encoding: 'utf8' });
    assert.equal(inet.stdout.trim(), 'tcp ok', `AF_INET stays allowed: ${inet.stderr}`);
  });

  it('wharf with Redis and advertiseUrl starts and serves under the restriction', async () => {
    const w = await startWharf({
      wrap,
      config: { upstreams: [], redis: { url: REDIS_URL, keyPrefix }, advertiseUrl: 'http://wharf-1.internal:5000' },
    });
    try {
      const ready = await fetch(`${w.url}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
      assert.match(w.logs(), /cluster mode: coordinating replicas through redis/);
      assert.doesNotMatch(w.logs(), /network interfaces/);
    } finally {
      await w.stop();
    }
  });

  it('without advertiseUrl it still starts, and says to set advertiseUrl', async () => {
    const w = await startWharf({ wrap, config: { upstreams: [], redis: { url: REDIS_URL, keyPrefix } } });
    try {
      assert.equal((await fetch(`${w.url}/readyz`)).status, 200);
      assert.match(w.logs(), /cannot list network interfaces; set advertiseUrl/);
    } finally {
      await w.stop();
    }
  });
});
