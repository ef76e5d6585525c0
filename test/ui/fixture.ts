/**
 * A wharf with client auth in front of a Distribution upstream, seeded for the web UI tests: local images
 * (one multi-platform, one with a hostile label), one only the admin may see, and a mirrored image.
 */
import { join } from 'node:path';
import { request, basicHeader, type Credentials, type HttpResponse } from '../helpers/http.js';
import { makeImage, makeMultiPlatform, pushImage, type TestImage, type TestIndex } from '../helpers/oci-image.js';
import { htpasswdFile, startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';

export const ADMIN: Credentials = { username: 'admin', password: 'admin-pw' };
export const READER: Credentials = { username: 'reader', password: 'reader-pw' };
export const HOSTILE = '<img src=x onerror="window.__pwned=1">"\'&';

export interface UiFixture {
  wharf: WharfProcess;
  upstream: RegistryProcess;
  multi: TestIndex;
  web: TestImage;
  stop(): Promise<void>;
}

export async function startUiFixture(): Promise<UiFixture> {
  const dir: TempDir = await tempDir('wharf-ui-');
  const htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { admin: ADMIN.password, reader: READER.password });
  const upstream = await startRegistry();
  const wharf = await startWharf({
    config: {
      upstreams: [{ name: 'hub', url: upstream.url, default: true, tagFreshness: '10m' }],
      auth: {
        htpasswd,
        anonymousPull: false,
        rules: [
          { repositories: ['apps/**', 'library/**'], users: ['admin'], actions: ['pull', 'push', 'delete'] },
          { repositories: ['apps/**', 'library/**'], users: ['reader'], actions: ['pull'] },
          { repositories: ['secret/**'], users: ['admin'], actions: ['pull', 'push'] },
        ],
      },
      // Who may run gc and verify from the UI (test/ui/maintenance.test.ts).
      ui: { admins: ['admin'] },
    },
  });
  const multi = makeMultiPlatform({ layers: 2 });
  const web = makeImage({ runConfig: { Labels: { 'org.example.note': HOSTILE }, Entrypoint: ['/bin/web'], Cmd: ['--port', '80'] } });
  await pushImage(wharf.url, 'apps/multi', '2.0', multi, ADMIN);
  await pushImage(wharf.url, 'apps/web', '1.0', web, ADMIN);
  await pushImage(wharf.url, 'apps/web', 'old', web, ADMIN);
  await pushImage(wharf.url, 'secret/vault', '1', makeImage(), ADMIN);
  await pushImage(upstream.url, 'library/alpine', '3', makeImage({ layers: 1 }));
  await waitForRepositories(wharf.url, ADMIN, 3);
  return {
    wharf,
    upstream,
    multi,
    web,
    async stop() {
      await wharf.stop();
      await upstream.stop();
      await dir.cleanup();
    },
  };
}

/** A pull of a mirrored image's manifest through wharf (moves the cache counters). */
export async function pullManifest(base: string, repo: string, ref: string, who: Credentials): Promise<HttpResponse> {
  return request(`${base}/v2/${repo}/manifests/${ref}`, {
    headers: { authorization: basicHeader(who), accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' },
  });
}

/** The repositories list is a snapshot a few seconds old at most: wait (bounded) until it holds `total` for `who`. */
export async function waitForRepositories(base: string, who: Credentials, total: number): Promise<void> {
  for (let i = 0; ; i++) {
    const r = await request(`${base}/_wharf/api/repositories`, { headers: { authorization: basicHeader(who) } });
    if (r.status === 200 && (JSON.parse(r.body.toString('utf8')) as { total: number }).total === total) return;
    if (i >= 300) throw new Error(`the pushed repositories never showed in the list: ${r.status} ${r.body.toString()}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}
