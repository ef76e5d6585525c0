import { execFile } from 'node:child_process';
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
