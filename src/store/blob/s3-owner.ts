import type { S3Bucket } from './s3-bucket.js';

/** How often the owner renews its claim; a claim not renewed for STALE_MS is a dead owner's. */
export const OWNER_RENEW_MS = 20_000;
export const OWNER_STALE_MS = 3 * OWNER_RENEW_MS;

export interface SoleUse {
  stop(): Promise<void>;
}

export class BucketInUseError extends Error {}

/**
 * Without Redis every wharf keeps its metadata to itself, so two of them on one bucket (and prefix) would each
 * evict, gc and sweep what the other links: refuse the second. The claim is an object naming the owner (`id`,
 * stable across restarts of one replica), renewed while it runs and removed at shutdown. It is a guard against a
 * misconfiguration, not a lock: two processes starting in the same instant are told apart by reading the claim
 * back after writing it (the last write wins, the other refuses).
 */
export async function claimSoleUse(
  bucket: S3Bucket,
  key: string,
  id: string,
  opts: { now?: () => number; settleMs?: number; onRenewError?: (e: Error) => void } = {},
): Promise<SoleUse> {
  const now = opts.now ?? Date.now;
  const holder = async (): Promise<string | undefined> => {
    const o = await bucket.head(key);
    if (!o || now() - o.lastModified > OWNER_STALE_MS) return undefined;
    const body = await bucket.getBytes(key);
    return body?.toString('utf8');
  };
  const other = await holder();
  if (other !== undefined && other !== id) throw inUse(key);
  await bucket.put(key, Buffer.from(id));
  await new Promise((r) => setTimeout(r, opts.settleMs ?? 1000));
  const after = await holder();
  if (after !== undefined && after !== id) throw inUse(key);
  const timer = setInterval(() => {
    bucket.put(key, Buffer.from(id)).catch((e: Error) => opts.onRenewError?.(e));
  }, OWNER_RENEW_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      if ((await holder().catch(() => undefined)) === id) await bucket.deleteMany([key]).catch(() => undefined);
    },
  };
}

function inUse(key: string): BucketInUseError {
  return new BucketInUseError(
    `storage.s3: another wharf without redis uses this bucket and prefix (${key}); several replicas on one bucket need a shared redis (config redis.url)`,
  );
}
