import { randomBytes, randomUUID } from 'node:crypto';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from '../helpers/fault-proxy.js';
import { makeImage, sha256, type TestImage } from '../helpers/oci-image.js';
import { startTokenRegistry, type TokenRegistry } from '../helpers/registry.js';
import type { TokenRequest } from '../helpers/token-server.js';
import { startWharf } from '../helpers/wharf.js';
import { startByteCounter, type ByteCounter } from './byte-counter.js';
import type { PulledImage } from './client.js';
import { startDistributionProxy } from './distribution-proxy.js';

export type TargetKind = 'wharf' | 'distribution';

/** A mirror under test: wharf or Distribution in proxy mode, in front of one upstream. */
export interface Target {
  kind: TargetKind;
  url: string;
  pid(): number | undefined;
  stop(): Promise<void>;
}

export interface UpstreamLink {
  url: string;
  username: string;
  password: string;
}

/** wharf's tag freshness in the bench: short, so a cached tag can be taken past it in seconds. */
export const WHARF_FRESHNESS_S = 2;

export async function startTarget(kind: TargetKind, upstream: UpstreamLink): Promise<Target> {
  if (kind === 'wharf') {
    const w = await startWharf({
      config: {
        upstreams: [
          {
            name: 'hub',
            url: upstream.url,
            default: true,
            tagFreshness: `${WHARF_FRESHNESS_S}s`,
            credentials: { username: upstream.username, password: upstream.password },
          },
        ],
        // The access log would cost wharf (and the bench, which keeps its output) on every request;
        // Distribution runs with its access log off too.
        log: { level: 'warn' },
      },
    });
    return { kind, url: w.url, pid: () => w.pid, stop: () => w.stop() };
  }
  const d = await startDistributionProxy({ remoteUrl: upstream.url, username: upstream.username, password: upstream.password });
  return { kind, url: d.url, pid: () => d.pid, stop: () => d.stop() };
}

export interface UpstreamWindow {
  /** Requests that reached the upstream registry (through the fault proxy) since mark(). */
  requests(): ProxiedRequest[];
  /** Requests to the token service since mark(). */
  tokens(): TokenRequest[];
  /** Bytes the upstream sent back since mark(), headers included. */
  bytesDown(): number;
}

/**
 * The one real upstream both mirrors use: Distribution behind a token service (Docker Hub's shape,
 * credentials required), a fault proxy that counts and injects, and a byte counter in front.
 * Mirrors run one at a time, so a window opened by mark() sees only the mirror under test.
 */
export interface Hub {
  link: UpstreamLink;
  registry: TokenRegistry;
  proxy: FaultProxy;
  counter: ByteCounter;
  mark(): UpstreamWindow;
  stop(): Promise<void>;
}

export async function startHub(): Promise<Hub> {
  const username = 'bench';
  const password = `pw-${randomUUID()}`;
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const registry = await startTokenRegistry({ users: { [username]: password }, anonymous: 'none' });
    stops.push(() => registry.stop());
    const proxy = await startFaultProxy(registry.registry.url);
    stops.push(() => proxy.stop());
    const counter = await startByteCounter(proxy.port);
    stops.push(() => counter.stop());
    return {
      link: { url: counter.url, username, password },
      registry,
      proxy,
      counter,
      mark() {
        proxy.reset();
        counter.reset();
        const t0 = registry.tokens.requests.length;
        return {
          requests: () => [...proxy.requests],
          tokens: () => registry.tokens.requests.slice(t0),
          bytesDown: () => counter.down,
        };
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

export interface BenchImage extends PulledImage {
  image: TestImage;
  /** Sum of config and layer sizes. */
  blobBytes: number;
}

function bench(image: TestImage): BenchImage {
  const blobs = [image.config, ...image.layers].map((b) => ({ digest: b.digest, size: b.bytes.length }));
  return { image, manifestDigest: image.manifestDigest, blobs, blobBytes: blobs.reduce((a, b) => a + b.size, 0) };
}

export function layeredImage(layers: number, layerSize: number): BenchImage {
  return bench(makeImage({ layers, layerSize }));
}

/**
 * One layer of `size` random bytes, not gzip'd: registries never look inside a layer, and
 * compressing 64 MiB would only slow the set-up.
 */
export function bigImage(size: number): BenchImage {
  const layer = randomBytes(size);
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  const config = { digest: sha256(configBytes), bytes: configBytes, mediaType: 'application/vnd.oci.image.config.v1+json' };
  const layerBlob = { digest: sha256(layer), bytes: layer, mediaType: 'application/vnd.oci.image.layer.v1.tar' };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: config.mediaType, digest: config.digest, size: configBytes.length },
      layers: [{ mediaType: layerBlob.mediaType, digest: layerBlob.digest, size: layer.length }],
    }),
  );
  return bench({
    manifest,
    manifestDigest: sha256(manifest),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config,
    layers: [layerBlob],
    platform: { os: 'linux', architecture: 'amd64' },
    diffIds: [sha256(layer)],
  });
}
