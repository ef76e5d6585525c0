/**
 * The operator commands find a running wharf from its configuration file (--config or $WHARF_CONFIG): the
 * address it listens on, its admin credentials, and /metrics on its own listener with its own credentials.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { freePort } from '../helpers/ports.js';
import { wharfCli } from '../helpers/wharf-cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';


let dir: TempDir;
let w: WharfProcess;
let configFile: string;

before(async () => {
  dir = await tempDir('wharf-cli-config-');
  const port = await freePort();
  const config = {
    listen: `127.0.0.1:${port}`,
    upstreams: [],
    admin: { username: 'ops', password: 'admin-secret' },
    metrics: { listen: `127.0.0.1:${await freePort()}`, username: 'prom', password: 'metrics-secret' },
  };
  configFile = join(dir.path, 'wharf.yaml');
  await writeFile(configFile, stringify({ ...config, dataDir: join(dir.path, 'data') }));
  w = await startWharf({ port, config, dataDir: join(dir.path, 'data') });
});
after(async () => {
  await w?.stop();
  await dir?.cleanup();
});

describe('CLI --config', () => {
  it('wharf stats --config reaches the address (the figures come from the JSON API, not the separate metrics listener)', async () => {
    const r = await wharfCli(['stats', '--config', configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^hit ratio: (?!unknown)/m, r.stdout);
    assert.match(r.stdout, /^repositories: 0 /m, r.stdout);
  });

  it('WHARF_CONFIG does the same for every remote command; flags still win', async () => {
    const ls = await wharfCli(['ls'], { WHARF_CONFIG: configFile });
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^no repositories$/m);
    const wrong = await wharfCli(['verify', '--password', 'wrong'], { WHARF_CONFIG: configFile });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /rejected the credentials/);
  });

  it('an invalid configuration is reported, not guessed around', async () => {
    const bad = join(dir.path, 'bad.yaml');
    await writeFile(bad, 'listen: nowhere\n');
    const r = await wharfCli(['stats', '--config', bad]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^wharf: invalid configuration:\n\s+listen: /m);
  });
});
