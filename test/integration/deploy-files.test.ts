import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { tempDir } from '../helpers/tmp.js';
import { startWharf } from '../helpers/wharf.js';
import { freePort } from '../helpers/ports.js';
import { waitExit } from '../helpers/process.js';
import { createMetrics, metricNames } from '../../src/observability/metrics.js';
import { startPrometheus, type PrometheusProcess } from '../helpers/prometheus.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const deploy = join(root, 'deploy');
const read = (p: string) => readFileSync(join(deploy, p), 'utf8');
const yamlOf = (p: string) => parse(read(p)) as Record<string, unknown>;

function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, cmd)));
}

/** Runs a command; resolves with exit code and combined output instead of throwing on failure. */
async function exec(cmd: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.once('error', rej);
    child.once('close', (code) => res({ code: code ?? -1, out }));
    // A command that exits without reading its input closes the pipe first: that EPIPE is not the test's failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

type Service = {
  build?: { context: string; dockerfile: string };
  image?: string;
  volumes?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  profiles?: string[];
  secrets?: Array<{ source: string; target?: string }>;
  deploy?: { replicas?: number; update_config?: { order?: string } };
  stop_grace_period?: string;
};
type ComposeFile = {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { external?: boolean; file?: string }>;
  configs?: Record<string, { external?: boolean; file?: string }>;
};

/** Bind mounts must point at files that exist; named volumes must be declared. */
function checkVolumes(file: string, compose: ComposeFile): void {
  for (const [name, svc] of Object.entries(compose.services)) {
    for (const v of svc.volumes ?? []) {
      const source = v.split(':')[0]!;
      if (source.startsWith('.') || source.startsWith('/')) {
        assert.ok(existsSync(resolve(deploy, source)), `${file}: ${name} mounts ${source}, which does not exist`);
      } else {
        assert.ok(compose.volumes && source in compose.volumes, `${file}: ${name} uses undeclared volume ${source}`);
      }
    }
  }
  for (const section of ['secrets', 'configs'] as const) {
    for (const [name, s] of Object.entries(compose[section] ?? {})) {
      if (s.file !== undefined) assert.ok(existsSync(resolve(deploy, s.file)), `${file}: ${section}.${name} file missing`);
      else assert.equal(s.external, true, `${file}: ${section}.${name} is neither a file nor external`);
    }
  }
}

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'Inf', 'NaN',
]);

/** Metric names an expression selects (functions, label matchers, grouping clauses and variables removed). */
export function metricsIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names: string[] = [];
  for (const m of stripped.matchAll(/(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || PROMQL_WORDS.has(m[1]!)) continue;
    names.push(m[1]!);
  }
  return names;
}

/** wharf's own names plus the prom-client defaults as a real registry exports them. */
async function knownMetrics(): Promise<Set<string>> {
  const { body } = await createMetrics().render();
  const defaults = [...body.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  return new Set<string>([...metricNames, ...defaults]);
}
/** The loader checks that credential files exist; a test stands in for the mounted secret. */
async function secretFile(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await tempDir('wharf-deploy-');
  t.after(dir.cleanup);
  const file = join(dir.path, 'password');
  writeFileSync(file, 'not-a-real-token\n');
  return file;
}

const base = (n: string) => n.replace(/_(bucket|sum|count)$/, '');

/** What Swarm does to a service's env for one task: its Go templates filled in (only the task name used here). */
function swarmTask(env: Record<string, string>, taskName: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    out[k] = v.replace(/\{\{\s*\.Task\.Name\s*\}\}/g, taskName);
    assert.doesNotMatch(out[k]!, /\{\{/, `${k}: a template this test does not fill in`);
  }
  return out;
}

describe('deploy/compose.yaml', () => {
  const compose = yamlOf('compose.yaml') as unknown as ComposeFile;

  it('builds wharf from the repository with deploy/Dockerfile', () => {
    const build = compose.services.wharf?.build;
    assert.ok(build);
    const context = resolve(deploy, build.context);
    assert.equal(context, root);
    assert.ok(statSync(join(context, build.dockerfile)).isFile());
  });

  it('mounts only files that exist and declares its volumes', () => {
    checkVolumes('compose.yaml', compose);
  });

  it('configures wharf by environment alone', async () => {
    const config = await loadConfig({ env: { ...compose.services.wharf!.environment }, cwd: root });
    assert.equal(config.redis?.url, 'redis://redis:6379');
  });

  it('starts wharf after a healthy Redis and points it there', () => {
    const { wharf, redis } = compose.services;
    assert.equal(wharf?.depends_on?.redis?.condition, 'service_healthy');
    assert.ok(redis?.healthcheck?.test.includes('ping'));
    assert.equal(wharf?.environment?.WHARF_REDIS_URL, 'redis://redis:6379');
    assert.ok(wharf?.volumes?.some((v) => v.endsWith(':/var/lib/wharf')));
  });

  it('adds Prometheus and Grafana only with the monitoring profile, wired to the shipped files', () => {
    assert.deepEqual(compose.services.prometheus?.profiles, ['monitoring']);
    assert.deepEqual(compose.services.grafana?.profiles, ['monitoring']);
    assert.equal(compose.services.wharf?.profiles, undefined);
    const promMounts = compose.services.prometheus?.volumes ?? [];
    assert.ok(promMounts.includes('./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro'));
    // prometheus.yml names its rule files relative to itself: they must be mounted next to it
    const ruleFiles = (yamlOf('prometheus/prometheus.yml').rule_files as string[]) ?? [];
    for (const f of ruleFiles) {
      assert.ok(promMounts.some((m) => m.endsWith(`:/etc/prometheus/${f}:ro`)), `rule file ${f} not mounted`);
    }
    // the dashboard provider reads the directory the dashboard is mounted into
    const provider = parse(read('grafana/provisioning/dashboards/wharf.yaml')) as {
      providers: Array<{ options: { path: string } }>;
    };
    const dashPath = provider.providers[0]!.options.path;
    assert.ok((compose.services.grafana?.volumes ?? []).some((m) => m.startsWith('./grafana/dashboard.json:' + dashPath + '/')));
  });
});

describe('deploy/stack.yaml', () => {
  const stack = yamlOf('stack.yaml') as unknown as ComposeFile;

  it('runs three wharf replicas, starting new tasks before stopping old ones', () => {
    assert.equal(stack.services.wharf?.deploy?.replicas, 3);
    assert.equal(stack.services.wharf?.deploy?.update_config?.order, 'start-first');
    assert.ok(stack.services.redis);
  });

  it('mounts only what exists or is external, and shares one data volume across nodes (NFS)', () => {
    checkVolumes('stack.yaml', stack);
    const mount = stack.services.wharf?.volumes?.find((v) => v.endsWith(':/var/lib/wharf'));
    assert.ok(mount);
    const volume = stack.volumes?.[mount.split(':')[0]!] as { driver?: string; driver_opts?: Record<string, string> };
    // a plain `local` volume is a different directory on every node: replicas elsewhere would not see the blobs
    assert.equal(volume.driver_opts?.type, 'nfs', 'the shared data volume is NFS, not node-local');
    assert.match(volume.driver_opts?.o ?? '', /\baddr=/);
    assert.match(volume.driver_opts?.o ?? '', /\bhard\b/);
  });

  it('reads the upstream password from a mounted swarm secret', () => {
    const wharf = stack.services.wharf!;
    const file = wharf.environment?.WHARF_UPSTREAMS_0_CREDENTIALS_PASSWORD_FILE;
    assert.ok(file !== undefined && file.startsWith('/run/secrets/'));
    const mounted = (wharf.secrets ?? []).map((s) => `/run/secrets/${s.target ?? s.source}`);
    assert.ok(mounted.includes(file), `${file} is not a mounted secret`);
    for (const s of wharf.secrets ?? []) assert.ok(stack.secrets?.[s.source], `secret ${s.source} not declared`);
  });

  it('configures wharf by environment alone (Swarm templates filled in per task)', async (t) => {
    const env = { ...swarmTask(stack.services.wharf!.environment ?? {}, 'wharf_wharf.2.x7k2p9'), WHARF_UPSTREAMS_0_CREDENTIALS_PASSWORD_FILE: await secretFile(t) };
    const config = await loadConfig({ env, cwd: root });
    assert.equal(config.advertiseUrl, 'http://wharf_wharf.2.x7k2p9:5000', "each replica advertises its own task's name");
    assert.equal(config.redis?.url, 'redis://redis:6379');
    assert.equal(config.upstreams[0]?.name, 'docker.io');
    assert.equal(config.upstreams[0]?.default, true);
    assert.equal(config.upstreams[0]?.credentials?.username, 'mydockerhubuser');
  });

  it('is a valid stack file for docker stack deploy', async (t) => {
    if (!hasCommand('docker')) return t.skip('docker CLI not installed');
    // `docker stack config` validates against the CLI's compose schema without a daemon
    const { code, out } = await exec('docker', ['stack', 'config', '-c', join(deploy, 'stack.yaml')]);
    assert.equal(code, 0, out);
  });
});

describe('deploy/wharf.yaml', () => {
  const example = yamlOf('wharf.yaml');
  const text = read('wharf.yaml');

  it('loads as shipped', async () => {
    const config = await loadConfig({ file: join(deploy, 'wharf.yaml'), env: {} });
    assert.deepEqual(config.upstreams.map((u) => [u.name, u.default]), [
      ['docker.io', true], ['ghcr.io', false], ['oracle', false], ['quay.io', false],
    ]);
    assert.ok(config.upstreams[2]?.aliases.includes('container-registry.oracle.com'));
    assert.equal(config.cache.maxSize, 200 * 1024 ** 3);
    assert.equal(config.dataDir, '/var/lib/wharf');
  });

  it('starts as shipped (listen and dataDir moved to a free port and a temp dir)', async () => {
    const w = await startWharf({ config: example, startTimeoutMs: 60_000 });
    try {
      assert.equal((await fetch(`${w.url}/readyz`)).status, 200, w.logs());
    } finally {
      await w.stop();
    }
  });

  it('shows every section, with the ones that need servers or files commented out', () => {
    for (const key of ['listen', 'dataDir', 'upstreams', 'cache', 'push', 'metrics', 'log', 'limits', 'server', 'uploads', 'health']) {
      assert.ok(key in example, `missing ${key}`);
    }
    for (const commented of ['# redis:', '#   url: redis://', '# credentials:', '#   passwordFile: /', '# tls:', '# auth:', '# advertiseUrl:']) {
      assert.ok(text.includes(commented), `shows ${commented}`);
    }
    const ups = example.upstreams as Array<{ name: string }>;
    assert.deepEqual(ups.map((u) => u.name), ['docker.io', 'ghcr.io', 'oracle', 'quay.io']);
    assert.ok(Array.isArray((example.push as { overlay: unknown }).overlay));
  });
});

describe('deploy/Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('health-checks with `wharf healthcheck`, as a non-root user, on the documented volume and port', () => {
    const hc = /^HEALTHCHECK (?:.*\\\n)*.*$/m.exec(dockerfile)?.[0] ?? '';
    assert.match(hc, /CMD \["node", "\/app\/dist\/cli\.js", "healthcheck"\]/); // run: test/integration/deploy-image.test.ts
    assert.match(dockerfile, /^USER wharf$/m);
    assert.match(dockerfile, /^VOLUME \/var\/lib\/wharf$/m);
    assert.match(dockerfile, /^EXPOSE 5000$/m);
    assert.match(dockerfile, /^ENTRYPOINT \["node", "dist\/cli\.js"\]$/m);
    assert.match(dockerfile, /^CMD \["serve"\]$/m);
  });

  it('copies only files that exist in the build context', () => {
    for (const m of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) assert.ok(existsSync(join(root, src)), `COPY ${src}: missing`);
    }
  });
});

/** ENV lines of the Dockerfile's last stage, as the container sees them (`ENV A=1 B=2` and `ENV A 1`). */
function imageEnv(dockerfile: string): Record<string, string> {
  const stages = dockerfile.split(/^FROM /m);
  const env: Record<string, string> = {};
  for (const m of stages[stages.length - 1]!.matchAll(/^ENV (.+)$/gm)) {
    const body = m[1]!.trim();
    if (!body.includes('=')) {
      const [k, ...v] = body.split(/\s+/);
      env[k!] = v.join(' ');
    } else {
      for (const kv of body.split(/\s+/)) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    }
  }
  return env;
}

/** Files the last stage COPYs from the build context, by their path in the image. */
function imageFiles(dockerfile: string): Map<string, string> {
  const stages = dockerfile.split(/^FROM /m);
  const files = new Map<string, string>();
  for (const m of stages[stages.length - 1]!.matchAll(/^COPY (?!--from)(\S+) (\S+)$/gm)) files.set(m[2]!, join(root, m[1]!));
  return files;
}

describe('built-in defaults never beat a configuration file (Makefile, Dockerfile, systemd unit)', () => {
  const dockerfile = read('Dockerfile');

  it('the image sets no WHARF_* variable but WHARF_CONFIG, a file holding its defaults', async () => {
    const env = imageEnv(dockerfile);
    assert.deepEqual(Object.keys(env).filter((k) => k.startsWith('WHARF_')), ['WHARF_CONFIG']);
    const baked = imageFiles(dockerfile).get(env.WHARF_CONFIG!);
    assert.ok(baked && existsSync(baked), `COPY of ${env.WHARF_CONFIG}`);
    // env only (compose, stack): the image's file gives the volume and the port
    const asShipped = await loadConfig({ file: baked, env: { ...env, WHARF_REDIS_URL: 'redis://redis:6379' }, cwd: '/app' });
    assert.equal(asShipped.dataDir, '/var/lib/wharf');
    assert.equal(asShipped.listen, '0.0.0.0:5000');
    assert.equal(asShipped.redis?.url, 'redis://redis:6379');
  });

  it('a file given to the image explicitly wins over the image defaults', async (t) => {
    const dir = await tempDir('wharf-deploy-');
    t.after(dir.cleanup);
    const file = join(dir.path, 'mine.yaml');
    writeFileSync(file, 'listen: 0.0.0.0:6000\ndataDir: /srv/wharf\n');
    const config = await loadConfig({ file, env: imageEnv(dockerfile), cwd: '/app' });
    assert.equal(config.dataDir, '/srv/wharf');
    assert.equal(config.listen, '0.0.0.0:6000');
  });

  it('the systemd unit exports no WHARF_* default and reads its config file', () => {
    const unit = read('wharf.service');
    assert.deepEqual(unit.match(/^Environment=WHARF_.*$/gm) ?? [], []);
    assert.match(unit, /^ExecStart=.* serve --config \/etc\/wharf\/wharf\.yaml$/m);
  });

  it('`make run CONFIG=file` serves from the file\'s dataDir', async (t) => {
    const dir = await tempDir('wharf-make-run-');
    t.after(dir.cleanup);
    const port = await freePort();
    const file = join(dir.path, 'f.yaml');
    writeFileSync(file, `listen: 127.0.0.1:${port}\ndataDir: ${join(dir.path, 'from-file')}\nupstreams: []\nlog: { level: warn }\n`);
    const dry = await exec('make', ['-s', '-n', '-C', root, 'run', `CONFIG=${file}`]);
    assert.equal(dry.code, 0, dry.out);
    const recipe = dry.out.trim().split('\n').pop()!;
    assert.match(recipe, /src\/cli\.ts serve --config /);
    // The recipe as make runs it (its `deps` prerequisite aside), without any WHARF_* from this shell.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_')) env[k] = v;
    const child = spawn('/bin/bash', ['-c', recipe], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
    t.after(async () => {
      try {
        process.kill(-child.pid!, 'SIGTERM'); // bash, npx and wharf: the recipe's process group
      } catch {
        return; // already gone
      }
      await waitExit(child, 15_000);
    });
    const deadline = Date.now() + 120_000;
    while ((await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status, () => 0)) !== 200) {
      assert.ok(child.exitCode === null && Date.now() < deadline, `make run did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(existsSync(join(dir.path, 'from-file')), `the store is in the file's dataDir:\n${out}`);
  });
});

describe('deploy/wharf.service', () => {
  it('passes systemd-analyze verify', async (t) => {
    if (!hasCommand('systemd-analyze')) return t.skip('systemd-analyze not installed');
    const { code, out } = await exec('systemd-analyze', ['verify', join(deploy, 'wharf.service')]);
    assert.equal(code, 0, out);
    assert.equal(out.trim(), '', out);
  });

  it('is hardened and stops gracefully', () => {
    const unit = read('wharf.service');
    for (const line of ['NoNewPrivileges=yes', 'ProtectSystem=strict', 'StateDirectory=wharf', 'Restart=on-failure', 'KillSignal=SIGTERM', 'ReadWritePaths=/var/lib/wharf']) {
      assert.match(unit, new RegExp(`^${line}$`, 'm'));
    }
    const stop = Number(/^TimeoutStopSec=(\d+)s$/m.exec(unit)?.[1]);
    // server.drainTimeout defaults to 30s; the unit must wait longer before SIGKILL
    assert.ok(stop > 30, `TimeoutStopSec=${stop}`);
  });
});

describe('deploy/daemon.json and containerd hosts.toml', () => {
  it('daemon.json configures a registry mirror', () => {
    const d = JSON.parse(read('daemon.json')) as { 'registry-mirrors': string[] };
    assert.ok(d['registry-mirrors'].length > 0);
    for (const u of d['registry-mirrors']) assert.doesNotThrow(() => new URL(u));
  });

  it('has a hosts.toml per registry with a pull/resolve mirror host', () => {
    for (const [registry, server] of [
      ['docker.io', 'https://registry-1.docker.io'],
      ['ghcr.io', 'https://ghcr.io'],
      ['container-registry.oracle.com', 'https://container-registry.oracle.com'],
    ] as const) {
      const toml = read(`containerd/${registry}/hosts.toml`);
      assert.match(toml, new RegExp(`^server = "${server}"$`, 'm'));
      assert.match(toml, /^\[host\."http:\/\/mirror:5000"\]\n\s+capabilities = \["pull", "resolve"\]$/m);
    }
  });
});

describe('deploy/podman/registries.conf', () => {
  it('mirrors every upstream of deploy/wharf.yaml through wharf with the registry as the path prefix', async () => {
    const conf = read('podman/registries.conf');
    const entries = conf.split(/^\[\[registry\]\]$/m).slice(1).map((block) => ({
      prefix: /^prefix = "([^"]+)"$/m.exec(block)?.[1],
      mirror: /\[\[registry\.mirror\]\]\nlocation = "([^"]+)"/.exec(block)?.[1],
    }));
    for (const e of entries) assert.equal(e.mirror, `mirror:5000/${e.prefix}`, `mirror of ${e.prefix}`);
    const config = await loadConfig({ file: join(deploy, 'wharf.yaml'), env: {} });
    const hosts = config.upstreams.map((u) => [new URL(u.url).host, ...u.aliases]);
    for (const h of hosts) assert.ok(entries.some((e) => e.prefix !== undefined && h.includes(e.prefix)), `no registries.conf entry for ${h[0]}`);
  });
});

describe('deploy/grafana/dashboard.json', () => {
  const dashboard = JSON.parse(read('grafana/dashboard.json')) as {
    panels: Array<{ type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string }> }>;
  };

  it('metricsIn finds the selected metrics of an expression', () => {
    assert.deepEqual(
      metricsIn('histogram_quantile(0.95, sum by (le, route) (rate(wharf_x_bucket{route="a b"}[$__rate_interval])))'),
      ['wharf_x_bucket'],
    );
    assert.deepEqual(metricsIn('a / on(instance) b > 0.5 and up{job="x"} offset 5m'), ['a', 'b', 'up']);
  });

  it('queries only metrics wharf exports', async () => {
    const known = await knownMetrics();
    let targets = 0;
    for (const p of dashboard.panels) {
      for (const t of p.targets ?? []) {
        targets++;
        const names = metricsIn(t.expr);
        assert.ok(names.length > 0, `${p.title}: ${t.expr} names no metric`);
        for (const n of names) assert.ok(known.has(base(n)) || known.has(n), `${p.title}: unknown metric ${n}`);
      }
    }
    assert.ok(targets >= 10);
  });

  it('has the panels an operator looks for', () => {
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)).join('\n');
    for (const m of [
      'wharf_http_requests_total', 'wharf_http_request_duration_seconds_bucket', 'wharf_cache_requests_total',
      'wharf_bytes_served_total', 'wharf_upstream_requests_total', 'wharf_upstream_ratelimit_remaining',
      'wharf_cache_size_bytes', 'wharf_cache_evictions_total', 'wharf_inflight_fetches',
    ]) {
      assert.ok(exprs.includes(m), `no panel uses ${m}`);
    }
    assert.match(exprs, /status="429"/);
  });

  it('uses the provisioned datasource', () => {
    const ds = parse(read('grafana/provisioning/datasources/prometheus.yaml')) as { datasources: Array<{ uid: string }> };
    const uid = ds.datasources[0]!.uid;
    for (const p of dashboard.panels.filter((p) => p.type !== 'row')) assert.equal(p.datasource?.uid, uid, p.title);
  });
});

describe('deploy/prometheus', () => {
  it('promtool accepts prometheus.yml (with its rule files)', async () => {
    const { code, out } = await exec('promtool', ['check', 'config', join(deploy, 'prometheus/prometheus.yml')]);
    assert.equal(code, 0, out);
    assert.match(out, /SUCCESS: 1 rule files found/);
  });

  it('promtool accepts alerts.yml and its unit tests pass', async () => {
    const check = await exec('promtool', ['check', 'rules', join(deploy, 'prometheus/alerts.yml')]);
    assert.equal(check.code, 0, check.out);
    const test = await exec('promtool', ['test', 'rules', join(deploy, 'prometheus/alerts.test.yml')]);
    assert.equal(test.code, 0, test.out);
  });

  it('alerts use only metrics wharf exports (and up)', async () => {
    const known = await knownMetrics();
    known.add('up');
    const rules = parse(read('prometheus/alerts.yml')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
    const alerts = rules.groups.flatMap((g) => g.rules);
    for (const r of alerts) {
      for (const n of metricsIn(r.expr)) assert.ok(known.has(base(n)) || known.has(n), `${r.alert}: unknown metric ${n}`);
    }
    const names = alerts.map((r) => r.alert);
    for (const a of ['WharfUpstreamRateLimitLow', 'WharfCacheHitRatioLow', 'WharfDiskNearlyFull', 'WharfUpstreamErrors', 'WharfUpstreamThrottled', 'WharfDigestMismatch']) {
      assert.ok(names.includes(a), `missing alert ${a}`);
    }
  });

  it('promtool finds no lint problems in what wharf exports', async () => {
    const m = createMetrics({ collectDefault: false, dataDir: root, cacheMaxBytes: 1 });
    m.httpRequest('end-1', 'GET', 200, 0.01);
    m.request('docker.io', 'GET', 200, 0.1);
    m.rateLimit('docker.io', { limit: 100, remaining: 90, observedAt: 0 });
    m.bytes('docker.io', 1);
    m.throttled('docker.io');
    m.digestMismatch('docker.io');
    const { code, out } = await exec('promtool', ['check', 'metrics'], (await m.render()).body);
    assert.equal(code, 0, out);
    assert.equal(out.trim(), '');
  });
});

describe('the shipped Prometheus config against a live metrics endpoint', () => {
  const metrics = createMetrics();
  let server: Server;
  let prom: PrometheusProcess;

  before(async () => {
    server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.statusCode = 404;
        res.end();
        return;
      }
      metrics.render().then(({ contentType, body }) => {
        res.setHeader('content-type', contentType);
        res.end(body);
      }, (err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    metrics.cacheRequest('blob', 'hit');
    metrics.rateLimit('docker.io', { limit: 100, remaining: 5, observedAt: 0 });
    prom = await startPrometheus({ scrapeTarget: `127.0.0.1:${port}`, scrapeInterval: '1s' });
  });
  after(async () => {
    await prom?.stop();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('scrapes every pre-initialised series and the recorded values', async () => {
    await prom.waitForScrape();
    const cache = (await prom.query('wharf_cache_requests_total')) as Array<{ metric: Record<string, string>; value: [number, string] }>;
    assert.equal(cache.length, 12);
    const hit = cache.find((s) => s.metric.kind === 'blob' && s.metric.outcome === 'hit');
    assert.equal(hit?.value[1], '1');
    const ratio = (await prom.query('wharf_upstream_ratelimit_remaining / wharf_upstream_ratelimit_limit')) as Array<{ value: [number, string] }>;
    assert.equal(ratio[0]?.value[1], '0.05');
    const defaults = (await prom.query('wharf_process_resident_memory_bytes')) as unknown[];
    assert.equal(defaults.length, 1);
  });

  it('loads the alert rules and evaluates them without errors', async () => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await fetch(`${prom.url}/api/v1/rules`);
      const body = (await res.json()) as {
        data: { groups: Array<{ rules: Array<{ name: string; health: string; lastError?: string; state?: string }> }> };
      };
      const rules = body.data.groups.flatMap((g) => g.rules);
      assert.ok(rules.length >= 6);
      const bad = rules.filter((r) => r.health === 'err');
      assert.deepEqual(bad, []);
      // remaining/limit is 5 %: the headroom alert goes pending at its first evaluation
      const limit = rules.find((r) => r.name === 'WharfUpstreamRateLimitLow');
      if (rules.every((r) => r.health === 'ok') && limit?.state === 'pending') return;
      if (Date.now() > deadline) assert.fail(`rules not evaluated: ${JSON.stringify(rules.map((r) => [r.name, r.health, r.state]))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
});
