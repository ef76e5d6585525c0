/**
 * deploy/Dockerfile without an engine: its stages performed by hand into a temp directory standing for the
 * image's root, as far as they run here. The build stage's COPY and RUN (tsc) run as written; prod-deps' `npm ci`
 * is replaced by the repository's node_modules; the final stage's COPY lines, ENV and the RUN that puts `wharf`
 * on PATH are applied under the root (useradd/groupadd are not). Then the commands README shows are run the way
 * `docker exec` and the HEALTHCHECK run them.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmod, cp, mkdir, symlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/ports.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { makeCa, makeServerCert } from '../helpers/tls.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const dockerfile = readFileSync(join(root, 'deploy/Dockerfile'), 'utf8').replace(/\\\n/g, ' ');

interface Stage {
  name?: string;
  workdir: string;
  lines: string[];
}

function stages(): Stage[] {
  return dockerfile
    .split(/^FROM /m)
    .slice(1)
    .map((body) => ({
      name: / AS (\S+)/i.exec(body.split('\n')[0]!)?.[1],
      workdir: /^WORKDIR (\S+)$/m.exec(body)?.[1] ?? '/',
      lines: body.split('\n').slice(1).filter((l) => /^[A-Z]+ /.test(l)),
    }));
}

let dir: TempDir;
/** the image's `/` */
let img: string;
/** PATH inside the image: the node base image's */
let imagePath: string;
let imageEnv: Record<string, string>;

/** A process as `docker exec` / HEALTHCHECK starts it: the image's PATH (its /usr/local/bin under img first) and ENV. */
function inImage(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, {
      cwd: join(img, 'app'),
      env: { HOME: '/nonexistent', PATH: imagePath, ...imageEnv, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.once('error', rej);
    child.once('close', (code) => res({ code: code ?? -1, out }));
  });
}

/** Paths the image sees, mapped under img (`/etc/wharf/wharf.yaml` → `<img>/etc/wharf/wharf.yaml`). */
const inRoot = (p: string): string => join(img, p);

before(async () => {
  dir = await tempDir('wharf-image-');
  img = join(dir.path, 'root');
  const [build, prodDeps, final] = stages();
  assert.equal(build?.name, 'build');
  assert.equal(prodDeps?.name, 'prod-deps');
  assert.ok(final);

  // build stage: COPY from the context, node_modules for `npm ci`, then the RUN lines that build
  const src = inRoot(build.workdir);
  await mkdir(src, { recursive: true });
  for (const line of build.lines) {
    const copy = /^COPY (.+) (\S+)$/.exec(line);
    if (copy) {
      for (const f of copy[1]!.split(/\s+/)) await cp(join(root, f), join(src, copy[2]!.endsWith('/') ? f : copy[2]!), { recursive: true });
      continue;
    }
    const runLine = /^RUN (.+)$/.exec(line)?.[1];
    if (runLine === undefined) continue;
    if (/^npm ci\b/.test(runLine)) await symlink(join(root, 'node_modules'), join(src, 'node_modules'));
    else await run('/bin/sh', ['-c', runLine], { cwd: src, timeout: 240_000 });
  }

  // final stage: COPY (context and --from), ENV, and the RUN that puts wharf on PATH
  const app = inRoot(final.workdir);
  await mkdir(app, { recursive: true });
  imageEnv = {};
  for (const line of final.lines) {
    const from = /^COPY --from=(\S+) (\S+) (\S+)$/.exec(line);
    if (from) {
      const target = resolve(final.workdir, from[3]!);
      if (from[1] === 'prod-deps') await symlink(join(root, 'node_modules'), inRoot(target)); // npm ci --omit=dev stand-in
      else await cp(inRoot(from[2]!), inRoot(target), { recursive: true });
      continue;
    }
    const copy = /^COPY (\S+) (\S+)$/.exec(line);
    if (copy) {
      const target = copy[2]!.startsWith('/') ? copy[2]! : resolve(final.workdir, copy[2]!);
      await mkdir(dirname(inRoot(target)), { recursive: true });
      await cp(join(root, copy[1]!), copy[2]!.endsWith('/') ? join(inRoot(target), copy[1]!) : inRoot(target), { recursive: true });
      continue;
    }
    const env = /^ENV (.+)$/.exec(line)?.[1];
    if (env) for (const kv of env.split(/\s+/)) imageEnv[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    const runLine = /^RUN (.+)$/.exec(line)?.[1];
    if (runLine === undefined || /groupadd|useradd/.test(runLine)) continue;
    for (const step of runLine.split('&&').map((s) => s.trim())) {
      const ch = /^chmod (\d+) (\/\S+)$/.exec(step);
      const ln = /^ln -s (\S+) (\/\S+)$/.exec(step);
      if (ch) await chmod(inRoot(ch[2]!), parseInt(ch[1]!, 8));
      else if (ln) {
        assert.ok(!ln[1]!.startsWith('/'), `the link is relative, so it resolves the same under ${img}: ${step}`);
        await mkdir(dirname(inRoot(ln[2]!)), { recursive: true });
        await symlink(ln[1]!, inRoot(ln[2]!));
      } else assert.fail(`RUN step not reproduced by this test: ${step}`);
    }
  }
  // node:20-bookworm-slim's PATH; node itself is /usr/local/bin/node there, here wherever this node is
  imagePath = [inRoot('/usr/local/bin'), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', dirname(process.execPath)].join(':');
  // WHARF_CONFIG names a file in the image
  if (imageEnv.WHARF_CONFIG) imageEnv.WHARF_CONFIG = inRoot(imageEnv.WHARF_CONFIG);
});
after(async () => {
  await dir?.cleanup();
});

describe('deploy/Dockerfile, its stages performed by hand', () => {
  it('`wharf --help` and `wharf gc --help` work from PATH, as in `docker exec wharf wharf gc`', async () => {
    const help = await inImage('wharf', ['--help']);
    assert.equal(help.code, 0, help.out);
    assert.match(help.out, /^Usage: wharf /m);
    const gc = await inImage('wharf', ['gc', '--help']);
    assert.equal(gc.code, 0, gc.out);
    assert.match(gc.out, /^Usage: wharf gc /m);
  });

  describe('HEALTHCHECK', () => {
    const argv = JSON.parse(/^HEALTHCHECK .*CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[];
    let tlsDir: TempDir;
    let tls: WharfProcess;
    let plain: WharfProcess;
    let tlsEnv: Record<string, string>;

    before(async () => {
      assert.ok(argv.length > 0, 'HEALTHCHECK CMD [...]');
      tlsDir = await tempDir('wharf-image-tls-');
      const ca = await makeCa(tlsDir.path);
      const cert = await makeServerCert(ca, { dns: ['wharf.example.internal'] });
      tls = await startWharf({ config: { upstreams: [], tls: { cert: cert.certPath, key: cert.keyPath } }, https: { ca: [ca.pem] } });
      plain = await startWharf({ config: { upstreams: [] } });
      // TLS turned on the way compose.yaml and stack.yaml say: WHARF_TLS_CERT / WHARF_TLS_KEY on top of the image's file
      tlsEnv = { WHARF_LISTEN: `0.0.0.0:${tls.port}`, WHARF_TLS_CERT: cert.certPath, WHARF_TLS_KEY: cert.keyPath };
    });
    after(async () => {
      await tls?.stop();
      await plain?.stop();
      await tlsDir?.cleanup();
    });

    /** The HEALTHCHECK command with the image's absolute paths mapped under img. */
    const healthcheck = (env: Record<string, string>) => inImage(argv[0]!, argv.slice(1).map((a) => (a.startsWith('/app/') ? inRoot(a) : a)), env);

    it('is healthy against a wharf serving TLS (its certificate from a private CA the container does not trust)', async () => {
      const r = await healthcheck(tlsEnv);
      assert.equal(r.code, 0, r.out);
    });

    it('is healthy against a plain-HTTP wharf', async () => {
      const r = await healthcheck({ WHARF_LISTEN: `0.0.0.0:${plain.port}` });
      assert.equal(r.code, 0, r.out);
    });

    it('is unhealthy when nothing answers', async () => {
      const r = await healthcheck({ WHARF_LISTEN: `0.0.0.0:${await freePort()}` });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /unhealthy/);
    });
  });
});
