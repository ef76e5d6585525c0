import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { ImmutableTags } from '../../src/core/immutable-tags.js';
import { UpstreamNamespaces } from '../../src/core/namespaces.js';
import { isRegistryError, type Digest } from '../../src/oci/index.js';

const ns = new UpstreamNamespaces([
  { name: 'docker.io', host: 'registry-1.docker.io', aliases: ['docker.io'], default: true, libraryPrefix: true },
  { name: 'ghcr', host: 'ghcr.io', aliases: [], default: false, libraryPrefix: false },
]);
const rules = new ImmutableTags(['team/**:v*', '**:sha256-*', 'library/alpine:pinned', 'ghcr.io/acme/*:1.*'], ns);
const D1 = `sha256:${'1'.repeat(64)}` as Digest;
const D2 = `sha256:${'2'.repeat(64)}` as Digest;

test('rules match <repository>:<tag> by canonical name or key, the push.overlay glob syntax on each side', () => {
  assert.equal(rules.rule(ns.resolve('team/app'), 'v1.2'), 'team/**:v*');
  assert.equal(rules.rule(ns.resolve('team/a/b'), 'v1'), 'team/**:v*');
  assert.equal(rules.rule(ns.resolve('team/app'), 'latest'), undefined);
  assert.equal(rules.rule(ns.resolve('x'), 'sha256-abc'), '**:sha256-*');
  assert.equal(rules.rule(ns.resolve('alpine'), 'pinned'), 'library/alpine:pinned', 'alpine is library/alpine');
  assert.equal(rules.rule(ns.resolve('docker.io/library/alpine'), 'pinned'), 'library/alpine:pinned');
  assert.equal(rules.rule(ns.resolve('ghcr.io/acme/tool'), '1.0'), 'ghcr.io/acme/*:1.*');
  assert.equal(rules.rule(ns.resolve('ghcr.io/acme/tool'), 'v1'), undefined);
  assert.equal(rules.rule(ns.resolve('team/app'), 'V1'), undefined, 'case-sensitive tags');
});

test('moving is DENIED naming the rule; the same digest and a first push are fine; deletes are DENIED', () => {
  const repo = ns.resolve('team/app');
  rules.assertMayPoint(repo, 'v1', undefined, D1);
  rules.assertMayPoint(repo, 'v1', D1, D1);
  rules.assertMayPoint(repo, 'latest', D1, D2);
  assert.throws(() => rules.assertMayPoint(repo, 'v1', D1, D2), (e) => isRegistryError(e) && e.code === 'DENIED' && e.message.includes('team/**:v*'));
  assert.throws(() => rules.assertMayDelete(repo, ['latest', 'v1'], 'manifest'), (e) => isRegistryError(e) && e.message.includes('v1'));
  rules.assertMayDelete(repo, ['latest'], 'manifest');
});

test('config: push.immutableTags entries need a repository and a tag pattern', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'wharf.yaml');
  await writeFile(file, 'push: { immutableTags: ["team/**:v*", "team/app", ":v1", "team/app:v/1"] }\n');
  const err = await loadConfig({ file, env: {}, cwd: dir }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ConfigError, String(err));
  assert.equal(err.problems.filter((p) => p.startsWith('push.immutableTags')).length, 3, err.problems.join('\n'));
});
