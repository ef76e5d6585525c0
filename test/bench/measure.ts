import { readFile } from 'node:fs/promises';
import type { UpstreamWindow } from './setup.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
export async function settle(w: UpstreamWindow, quietMs = 700, maxMs = 30_000): Promise<void> {
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

/** VmRSS and VmHWM (the peak RSS over the process's life) in bytes, or undefined once it has gone. */
export async function memory(pid: number): Promise<{ rss: number; peak: number } | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return undefined;
  }
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
