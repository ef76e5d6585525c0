/**
 * deploy/kubernetes/: every object validates against the Kubernetes API schemas (kubernetes-models, the
 * OpenAPI schemas compiled to validators), and the pieces agree with each other and with wharf: the config
 * loads, probes hit wharf's health endpoints, the advertise URL is the pod's own, selectors select, and the
 * node step writes the hosts.toml containerd expects.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/index.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const k8sDir = join(root, 'deploy/kubernetes');
const require = createRequire(import.meta.url);
const run = promisify(execFile);

type Obj = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [k: string]: unknown };
type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };
type Probe = { httpGet?: { path: string; port: string | number } };
type Container = {
  name: string;
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: EnvVar[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
  command?: string[];
};
type PodSpec = {
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  volumes?: Array<{ name: string; configMap?: { name: string }; secret?: { secretName: string }; persistentVolumeClaim?: { claimName: string } }>;
};
type Workload = Obj & { spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } };

/** apiVersion + kind → the kubernetes-models class that validates it (the module path is the API group/version). */
function validatorFor(o: Obj): { validate(): void } {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const modulePath = `kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}`;
  const Model = (require(modulePath) as Record<string, new (data: unknown) => { validate(): void }>)[o.kind];
  assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind}`);
  return new Model(o);
}

/** Every manifest, the applied ones (deploy/kubernetes/*.yaml) and the examples (examples/*.yaml). */
function loadAll(): Map<string, Obj[]> {
  const byFile = new Map<string, Obj[]>();
  const files = [
    ...readdirSync(k8sDir).filter((n) => n.endsWith('.yaml')),
    ...readdirSync(join(k8sDir, 'examples')).filter((n) => n.endsWith('.yaml')).map((n) => `examples/${n}`),
  ].sort();
  for (const f of files) {
    const docs = parseAllDocuments(readFileSync(join(k8sDir, f), 'utf8'));
    for (const d of docs) assert.deepEqual(d.errors, [], `${f}: YAML errors`);
    byFile.set(f, docs.map((d) => d.toJSON() as Obj).filter((o) => o !== null));
  }
  return byFile;
}

describe('deploy/kubernetes', () => {
  const files = loadAll();
  const all = [...files.values()].flat();
  const find = <T extends Obj>(kind: string, name: string): T => {
    const o = all.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `no ${kind} ${name} in deploy/kubernetes`);
    return o as T;
  };
  const deployment = find<Workload>('Deployment', 'wharf');
  const pod = deployment.spec.template.spec;
  const wharf = pod.containers.find((c) => c.name === 'wharf')!;
  let tmp: TempDir;

  /**
   * Loads a wharf.yaml as the pod would: the Secret's keys written as files under a temp root at the path
   * the pod mounts them (wharf refuses a config naming a credentials file that does not exist).
   */
  async function loadPodConfig(yamlText: string, secretMountPath: string, secretData: Record<string, string>) {
    const podRoot = join(tmp.path, 'pod');
    mkdirSync(join(podRoot, secretMountPath), { recursive: true });
    for (const [k, v] of Object.entries(secretData)) writeFileSync(join(podRoot, secretMountPath, k), v);
    const file = join(tmp.path, 'wharf.yaml');
    writeFileSync(file, yamlText.replaceAll(`${secretMountPath}/`, `${podRoot}${secretMountPath}/`));
    return loadConfig({ file, env: { WHARF_ADVERTISE_URL: 'http://10.1.2.3:5000' }, cwd: tmp.path });
  }

  before(async () => {
    tmp = await tempDir();
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('every object validates against the Kubernetes API schemas', () => {
    assert.ok(all.length >= 9, 'the manifests are all read');
    for (const [file, objs] of files) {
      for (const o of objs) {
        assert.doesNotThrow(() => validatorFor(o).validate(), `${file}: ${o.kind} ${o.metadata.name}`);
      }
    }
    const kinds = new Set(all.map((o) => o.kind));
    for (const k of ['Deployment', 'Service', 'ConfigMap', 'Secret', 'PodDisruptionBudget', 'DaemonSet', 'PersistentVolumeClaim']) {
      assert.ok(kinds.has(k), `a ${k} is shipped`);
    }
  });

  it('the validator refuses a broken object (it is not a rubber stamp)', () => {
    const broken = structuredClone(deployment);
    (broken.spec.template.spec.containers[0]!.ports![0] as { containerPort: unknown }).containerPort = '5000';
    assert.throws(() => validatorFor(broken).validate(), /containerPort/);
    const noSelector = structuredClone(deployment) as Obj & { spec: Record<string, unknown> };
    delete noSelector.spec.selector;
    assert.throws(() => validatorFor(noSelector).validate(), /selector/);
  });

  it("the ConfigMap's wharf.yaml is a valid wharf configuration that the pod mounts where WHARF_CONFIG points", async () => {
    const cm = find<Obj & { data: Record<string, string> }>('ConfigMap', 'wharf-config');
    const env = Object.fromEntries((wharf.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
    const configPath = env.WHARF_CONFIG!;
    const mount = wharf.volumeMounts!.find((m) => configPath.startsWith(`${m.mountPath}/`))!;
    assert.ok(mount, 'WHARF_CONFIG lies in a mounted volume');
    assert.equal(pod.volumes!.find((v) => v.name === mount.name)?.configMap?.name, 'wharf-config');
    // The pod's filesystem, in a temp dir: the Secret's keys as files where the pod mounts them.
    const secretMount = wharf.volumeMounts!.find((m) => pod.volumes!.find((v) => v.name === m.name)?.secret)!;
    const secret = find<Obj & { stringData: Record<string, string> }>('Secret', 'wharf-secrets');
    const config = await loadPodConfig(cm.data[configPath.slice(mount.mountPath.length + 1)]!, secretMount.mountPath, secret.stringData);
    assert.ok(config.redis, 'replicas share Redis');
    assert.equal(config.dataDir, '/var/lib/wharf');
    assert.ok(wharf.volumeMounts!.some((m) => m.mountPath === config.dataDir), 'dataDir is a mounted volume');
    assert.ok(config.upstreams.some((u) => u.credentials?.passwordFile), 'an upstream reads its token from the Secret');
    assert.ok(config.storage.s3?.secretAccessKeyFile?.includes(secretMount.mountPath), "the bucket's secret comes from the Secret");
    // The grace period outlasts the drain, so a rolling update never cuts a pull.
    assert.ok(pod.terminationGracePeriodSeconds! * 1000 > config.server.drainTimeout, 'grace period > drainTimeout');
  });

  it("probes hit wharf's health endpoints, and each replica advertises its own pod address", () => {
    assert.equal(wharf.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(wharf.livenessProbe?.httpGet?.path, '/healthz');
    const portName = wharf.readinessProbe!.httpGet!.port;
    assert.equal(wharf.ports!.find((p) => p.name === portName)?.containerPort, 5000);
    const env = wharf.env!;
    const advertise = env.find((e) => e.name === 'WHARF_ADVERTISE_URL')!;
    const m = /^http:\/\/\$\((\w+)\):5000$/.exec(advertise.value ?? '');
    assert.ok(m, 'WHARF_ADVERTISE_URL is built from a variable');
    const source = env.findIndex((e) => e.name === m[1]);
    assert.ok(source >= 0 && source < env.indexOf(advertise), 'the variable is defined before use (Kubernetes expands only earlier ones)');
    assert.equal(env[source]!.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
  });

  it('Service and PodDisruptionBudget select the Deployment; replicas share a bucket, or a ReadWriteMany claim', async () => {
    const labels = deployment.spec.template.metadata.labels;
    const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    assert.ok(selects(deployment.spec.selector.matchLabels));
    const svc = find<Obj & { spec: { selector: Record<string, string>; ports: Array<{ targetPort: string; nodePort?: number }> } }>('Service', 'wharf');
    assert.ok(selects(svc.spec.selector));
    assert.ok(wharf.ports!.some((p) => p.name === svc.spec.ports[0]!.targetPort));
    const pdb = find<Obj & { spec: { selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget', 'wharf');
    assert.ok(selects(pdb.spec.selector.matchLabels));
    // As shipped the blobs are in S3, so each pod's dataDir is its own (an emptyDir): no shared volume needed.
    const cm = find<Obj & { data: Record<string, string> }>('ConfigMap', 'wharf-config');
    const secretMount = wharf.volumeMounts!.find((m) => pod.volumes!.find((v) => v.name === m.name)?.secret)!;
    const secret = find<Obj & { stringData: Record<string, string> }>('Secret', 'wharf-secrets');
    const config = await loadPodConfig(cm.data['wharf.yaml']!, secretMount.mountPath, secret.stringData);
    assert.ok(config.storage.s3, 'blobs in a bucket');
    assert.ok(config.redis, 'S3 with several replicas needs Redis');
    const dataMount = wharf.volumeMounts!.find((m) => m.mountPath === config.dataDir)!;
    const dataVolume = pod.volumes!.find((v) => v.name === dataMount.name) as { emptyDir?: object } | undefined;
    assert.ok(dataVolume?.emptyDir, "each pod's dataDir is its own");
    // The documented alternative: a shared POSIX volume, ReadWriteMany.
    const pvc = find<Obj & { spec: { accessModes: string[] } }>('PersistentVolumeClaim', 'wharf-data');
    assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany'], 'replicas on several nodes share the blob volume');
  });

  it("the node step writes, for each registry wharf mirrors, the hosts.toml containerd reads", async () => {
    const cm = find<Obj & { data: Record<string, string> }>('ConfigMap', 'wharf-containerd-hosts');
    const ds = find<Workload>('DaemonSet', 'wharf-containerd-hosts');
    const init = ds.spec.template.spec.initContainers![0]!;
    assert.equal(init.env!.find((e) => e.name === 'NODE_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.hostIP');
    const svc = find<Obj & { spec: { ports: Array<{ nodePort: number }> } }>('Service', 'wharf');
    // Run the script the init container runs, with its host and config paths moved into a temp dir.
    const hostDir = join(tmp.path, 'certs.d');
    const configDir = join(tmp.path, 'config');
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, 'registries'), cm.data.registries!);
    const script = cm.data['write-hosts.sh']!.replaceAll('/host/etc/containerd/certs.d', hostDir).replaceAll('/config/', `${configDir}/`);
    writeFileSync(join(configDir, 'write-hosts.sh'), script);
    await run('sh', [join(configDir, 'write-hosts.sh')], { env: { ...process.env, NODE_IP: '192.0.2.7' } });
    // Every registry listed is one wharf mirrors (by upstream name, host or alias), so no pull is answered NAME_UNKNOWN.
    const wharfCm = find<Obj & { data: Record<string, string> }>('ConfigMap', 'wharf-config');
    const secretMount = wharf.volumeMounts!.find((m) => pod.volumes!.find((v) => v.name === m.name)?.secret)!;
    const secret = find<Obj & { stringData: Record<string, string> }>('Secret', 'wharf-secrets');
    const config = await loadPodConfig(wharfCm.data['wharf.yaml']!, secretMount.mountPath, secret.stringData);
    const known = new Set(config.upstreams.flatMap((u) => [u.name, new URL(u.url).host, ...u.aliases]));
    const lines = cm.data.registries!.split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length >= 2);
    for (const line of lines) {
      const [registry, server] = line.trim().split(/\s+/);
      assert.ok(known.has(registry!), `${registry} is one of wharf's upstreams`);
      const toml = readFileSync(join(hostDir, registry!, 'hosts.toml'), 'utf8');
      assert.match(toml, new RegExp(`^server = "${server!.replaceAll('.', '\\.')}"$`, 'm'));
      assert.match(toml, new RegExp(`^\\[host\\."http://192\\.0\\.2\\.7:${svc.spec.ports[0]!.nodePort}"\\]$`, 'm'));
      assert.match(toml, /capabilities = \["pull", "resolve"\]/);
    }
    // The shipped single-node example has the same shape.
    const example = readFileSync(join(root, 'deploy/containerd/docker.io/hosts.toml'), 'utf8');
    assert.match(example, /capabilities = \["pull", "resolve"\]/);
  });
});
