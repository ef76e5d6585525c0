import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** Bytes of `path` resident in the page cache now (util-linux `fincore`). */
export async function pageCacheBytes(path: string): Promise<number> {
  const { stdout } = await promisify(execFile)('fincore', ['--bytes', '--noheadings', '--output', 'RES', path]);
  return Number(stdout.trim());
}
