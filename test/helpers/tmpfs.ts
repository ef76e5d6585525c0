import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Mounts a tmpfs of `size` (e.g. '4m') on `dir`: a small disk that really fills up. Returns why not, or undefined. */
export async function mountTmpfs(dir: string, size: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
    return undefined;
  } catch (e) {
    return `mount -t tmpfs failed: ${(e as Error).message.split('\n')[0]}`;
  }
}

export async function unmountTmpfs(dir: string): Promise<void> {
  await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
}

/**
 * A fresh directory with a tmpfs of `size` mounted on it (a small disk that really fills up), or undefined
 * after marking the test skipped when no tmpfs can be had here. The caller unmounts and removes it.
 */
export async function smallDisk(t: { skip(message: string): void }, name: string, size: string): Promise<string | undefined> {
  const dir = join(tmpdir(), `${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir);
  const why = await mountTmpfs(dir, size);
  if (why === undefined) return dir;
  await rm(dir, { recursive: true, force: true });
  t.skip(`needs a ${size} tmpfs data directory (${why})`);
  return undefined;
}
