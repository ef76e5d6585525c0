/**
 * A wharf for the cache dashboard's tests: htpasswd auth (fixture.ts's users), a Distribution upstream behind
 * a fault proxy (to slow a download down, or add rate-limit headers), a second upstream that is not
 * listening (unreachable), a mirrored image big enough to watch in flight, and a local image with a referrer.
 */
import { join } from 'node:path';
import { basicHeader, request, RegistrySession, type Credentials, type HttpResponse } from '../helpers/http.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeImage, makeMultiPlatform, pushImage, sha256, type TestImage, type TestIndex } from '../helpers/oci-image.js';
import { freePort } from '../helpers/ports.js';
import { htpasswdFile, startRegistry, type RegistryProcess } from '../helpers/registry.js';
import { tempDir } from '../helpers/tmp.js';
import { startWharf, type WharfProcess } from '../helpers/wharf.js';
import { ADMIN, READER } from './fixture.js';

export const SBOM_TYPE = 'application/spdx+json';
/** the layer of `library/big`: about 3 MiB, paced at BIG_RATE to take about 12 s */
export const BIG_RATE = 256 * 1024;

export interface DashboardFixture {
  wharf: WharfProcess;
  upstream: RegistryProcess;
  proxy: FaultProxy;
  big: TestImage;
  /** secret/vault:1, which only the admin may pull (and no test pulls but the one that watches it download) */
  secret: TestImage;
  multi: TestIndex;
  signed: TestImage;
  /** the referrer (an SBOM artifact) pushed with `signed` as its subject */
  sbom: { digest: string };
  stop(): Promise<void>;
}

export async function startDashboardFixture(): Promise<DashboardFixture> {
  const dir = await tempDir('wharf-dash-');
  const htpasswd = join(dir.path, 'htpasswd');
  await htpasswdFile(htpasswd, { admin: ADMIN.password, reader: READER.password });
  const upstream = await startRegistry();
  const proxy = await startFaultProxy(upstream.url);
  const deadPort = await freePort(); // nothing listens there: connections are refused
  const wharf = await startWharf({
    config: {
      upstreams: [
        { name: 'hub', url: proxy.url, default: true, tagFreshness: '10m' },
        { name: 'dead', url: `http://127.0.0.1:${deadPort}`, aliases: ['dead.example'] },
      ],
      auth: {
        htpasswd,
        anonymousPull: false,
        rules: [
          { repositories: ['apps/**', 'library/**', 'secret/**', 'dead.example/**'], users: ['admin'], actions: ['pull', 'push', 'delete'] },
          { repositories: ['apps/**', 'library/**', 'dead.example/**'], users: ['reader'], actions: ['pull'] },
        ],
      },
    },
  });
  const big = makeImage({ layers: 1, layerSize: 3 * 1024 * 1024 });
  const secret = makeImage({ layers: 1 });
  const multi = makeMultiPlatform({ layers: 1 });
  for (const [repo, x] of [
    ['library/alpine', makeImage({ layers: 1 })],
    ['library/busybox', makeImage({ layers: 1 })],
    ['library/rated', makeImage({ layers: 1 })],
    ['secret/tool', makeImage({ layers: 1 })],
    ['secret/vault', secret],
    ['library/multi', multi],
    ['library/big', big],
  ] as const) {
    await pushImage(upstream.url, repo, '1', x);
  }
  const signed = makeImage({ layers: 1 });
  await pushImage(wharf.url, 'apps/signed', '1.0', signed, ADMIN);
  const sbom = await pushReferrer(wharf.url, 'apps/signed', { mediaType: signed.mediaType, digest: signed.manifestDigest, size: signed.manifest.length }, ADMIN);
  return {
    wharf,
    upstream,
    proxy,
    big,
    secret,
    multi,
    signed,
    sbom,
    async stop() {
      await wharf.stop();
      await proxy.stop();
      await upstream.stop();
      await dir.cleanup();
    },
  };
}

/** Pushes an SBOM artifact (an OCI manifest with `subject`) by digest, as `oras attach` or cosign do. */
async function pushReferrer(base: string, repo: string, subject: { mediaType: string; digest: string; size: number }, who: Credentials): Promise<{ digest: string }> {
  const s = new RegistrySession(who, `repository:${repo}:pull,push`);
  const empty = Buffer.from('{}');
  const doc = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'signed' }));
  for (const b of [empty, doc]) {
    const r = await s.request(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(b)}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: b });
    expect(r, 201, `blob upload to ${repo}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: SBOM_TYPE,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: empty.length },
      layers: [{ mediaType: SBOM_TYPE, digest: sha256(doc), size: doc.length }],
      subject,
      annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
    }),
  );
  const digest = sha256(manifest);
  const r = await s.request(`${base}/v2/${repo}/manifests/${digest}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  expect(r, 201, `referrer manifest to ${repo}`);
  return { digest };
}

function expect(r: HttpResponse, status: number, what: string): void {
  if (r.status !== status) throw new Error(`${what}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
}

export interface Stats {
  downloads: Array<{ repository: string; digest: string; upstream: string; received: number; size?: number; clients: number; startedAt: number }>;
  topPulls: { hour: Array<{ repository: string; pulls: number }>; day: Array<{ repository: string; pulls: number }> };
  upstreams: Array<{
    name: string;
    rateLimit?: { limit?: number; remaining?: number };
    health?: { state: string; lastSuccess?: number; lastError?: { at: number; message: string }; failures: number };
  }>;
}

export async function stats(base: string, who: Credentials): Promise<Stats> {
  const r = await request(`${base}/_wharf/api/stats`, { headers: { authorization: basicHeader(who) } });
  expect(r, 200, 'GET /_wharf/api/stats');
  return JSON.parse(r.body.toString('utf8')) as Stats;
}

/** Polls the stats (bounded) until `ok` holds of them; returns them, or throws with the last seen. */
export async function statsUntil(base: string, who: Credentials, ok: (s: Stats) => boolean, what: string, timeoutMs = 30_000): Promise<Stats> {
  const end = Date.now() + timeoutMs;
  let s = await stats(base, who);
  while (!ok(s)) {
    if (Date.now() > end) throw new Error(`${what}: not seen within ${timeoutMs} ms; last stats ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
    s = await stats(base, who);
  }
  return s;
}

/** GET of a manifest through wharf (a pull) with the media types a client accepts. */
export function getManifest(base: string, repo: string, ref: string, who: Credentials): Promise<HttpResponse> {
  return request(`${base}/v2/${repo}/manifests/${ref}`, {
    headers: {
      authorization: basicHeader(who),
      accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json',
    },
  });
}
