/** The Redis the tests share (127.0.0.1:6379; .ci/run starts one if nothing answers) and per-run key hygiene. */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = 'redis://127.0.0.1:6379';

/** A key prefix of this run's own: tests touch and remove only keys under it. */
export function testPrefix(): string {
  return `wharf-test-${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under the prefix (and only those). */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
