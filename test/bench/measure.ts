import { readFile } from 'node:fs/promises';
import type { Hub, Target, UpstreamWindow } from './setup.js';
import type { BenchImage } from './setup.js';

/** One scenario's figures for one mirror: row label → cell text, in display order. */
export type Figures = Map<string, string>;

export interface BenchImages {
  one: BenchImage;
  many: BenchImage;
  tags: BenchImage;
  staleV1: BenchImage;
  staleV2: BenchImage;
  big1: BenchImage;
  big2: BenchImage;
}

export interface ScenarioContext {
  target: Target;
  hub: Hub;
  images: BenchImages;
}

export const MiB = 1024 * 1024;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

export function isBlobGet(r: { method: string; path: string }): boolean {
  return r.method === 'GET' && /\/blobs\/sha256:[0-9a-f]{64}$/.test(r.path);
}

export function isManifest(r: { path: string }): boolean {
  return /\/manifests\//.test(r.path);
}

/**
 * Waits until the upstream has been quiet for `quietMs`: a mirror may finish (or start) fetches after
 * its client was answered, e.g. Distribution stores a blob in the background; those count too.
 */
export async function settle(w: UpstreamWindow, quietMs = 700, maxMs = 15_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let last = `${w.requests().length}/${w.bytesDown()}`;
  let since = Date.now();
  while (Date.now() < deadline) {
    await sleep(100);
    const pending = w.requests().some((r) => r.status === 0);
    const now = `${w.requests().length}/${w.bytesDown()}`;
    if (now !== last || pending) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return;
    }
  }
}

/** VmRSS of a process in bytes, or undefined once it has gone. */
export async function rss(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Samples VmRSS every `everyMs` until stop(); returns the samples (bytes). */
export function sampleRss(pid: number, everyMs = 100): { stop(): Promise<number[]> } {
  const samples: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const v = await rss(pid);
      if (v !== undefined) samples.push(v);
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** `{"errors":[{"code":"X"}]}` → "X"; anything else → undefined. */
export function errorCode(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { errors?: Array<{ code?: unknown }> };
    const codes = (parsed.errors ?? []).map((e) => e.code).filter((c): c is string => typeof c === 'string');
    return codes.length > 0 ? codes.join(',') : undefined;
  } catch {
    return undefined;
  }
}
