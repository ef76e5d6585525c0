/**
 * podman (and CRI-O, which reads the same registries.conf) through wharf. A registries.conf mirror sends no
 * `?ns=`, so the mirror's location must carry the registry as a path prefix: `location = "mirror:5000/ghcr.io"`.
 * Real podman, as root with its own --root/--runroot (vfs storage) and its own registries.conf; the upstream is a
 * real Distribution serving a ghcr.io-like name, configured in wharf with the alias `ghcr.io`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startGhcrUpstream, startHubUpstream, startMirror, type MirrorUpstream } from '../helpers/mirror.js';
import { makeImage } from '../helpers/oci-image.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import type { WharfProcess } from '../helpers/wharf.js';

const hasPodman = (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'podman')));
const isRoot = process.getuid?.() === 0;

let hub: MirrorUpstream;
let ghcr: MirrorUpstream;
let w: WharfProcess;
let dir: TempDir;
const tool = makeImage({ layers: 2 });
const impostor = makeImage({ layers: 1 });

/** Runs podman with its own storage and registries.conf under `home`; resolves with exit code and output. */
function podman(home: string, registriesConf: string, args: string[]): Promise<{ code: number; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_REGISTRIES_CONF: registriesConf, XDG_RUNTIME_DIR: join(home, 'xdg'), HOME: home };
  const argv = ['--root', join(home, 'root'), '--runroot', join(home, 'run'), '--storage-driver', 'vfs', '--events-backend', 'none', ...args];
  return new Promise((resolve, reject) => {
    const child = spawn('podman', argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

/**
 * registries.conf for `ghcr.io/…` with wharf as its mirror. The primary location is a dead loopback port, not
 * ghcr.io: were the mirror to fail, podman would fall back to it, and a test never reaches the internet.
 */
function registriesConf(mirrorLocation: string): string {
  return [
    'unqualified-search-registries = []',
    '',
    '[[registry]]',
    'prefix = "ghcr.io"',
    'location = "127.0.0.1:1"',
    'insecure = true',
    '',
    '[[registry.mirror]]',
    `location = "${mirrorLocation}"`,
    'insecure = true',
    '',
  ].join('\n');
}

async function pullWith(name: string, mirrorLocation: string): Promise<{ code: number; out: string; digest: string }> {
  const home = join(dir.path, name);
  await mkdir(join(home, 'xdg'), { recursive: true });
  const conf = join(home, 'registries.conf');
  await writeFile(conf, registriesConf(mirrorLocation));
  const pull = await podman(home, conf, ['pull', 'ghcr.io/acme/tool:1']);
  if (pull.code !== 0) return { ...pull, digest: '' };
  const inspect = await podman(home, conf, ['image', 'inspect', '--format', '{{.Digest}}', 'ghcr.io/acme/tool:1']);
  assert.equal(inspect.code, 0, inspect.out);
  return { ...pull, digest: inspect.out.trim() };
}

describe('podman with a registries.conf mirror', { skip: !hasPodman ? 'podman not installed' : !isRoot ? 'podman runs as root here (--root/--runroot)' : false }, () => {
  before(async () => {
    dir = await tempDir('wharf-podman-');
    hub = await startHubUpstream();
    ghcr = await startGhcrUpstream({ name: 'ghcr', alias: 'ghcr.io' });
    await ghcr.push('acme/tool', '1', tool);
    // Docker Hub (the default upstream) has a different image under the same name.
    await hub.push('acme/tool', '1', impostor);
    w = await startMirror([hub.config(), ghcr.config()]);
  });
  after(async () => {
    await w?.stop();
    await ghcr?.stop();
    await hub?.stop();
    await dir?.cleanup();
  });

  it('location = "mirror:5000/ghcr.io" pulls the image from the ghcr.io upstream', async () => {
    hub.proxy.reset();
    ghcr.proxy.reset();
    const r = await pullWith('path-form', `${w.host}/ghcr.io`);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.digest, tool.manifestDigest, 'the ghcr.io image');
    assert.ok(ghcr.proxy.count({ path: '/v2/acme/tool/manifests/1' }) > 0, 'asked the ghcr.io upstream');
    assert.equal(hub.proxy.count({ path: /acme\/tool/ }), 0, 'never Docker Hub');
  });

  it('location = "mirror:5000" (no path) sends no ns: wharf resolves the name against its default upstream', async () => {
    const r = await pullWith('bare-form', w.host);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.digest, impostor.manifestDigest, "the default upstream's image of the same name: why the path form is needed");
  });
});
