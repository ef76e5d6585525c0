import { open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { errnoOf } from '../blob/blob-fs.js';

/** Lock paths this process holds: a LOCK with our own pid is ours only if listed here (pid reuse in containers). */
const heldHere = new Set<string>();

export class LockHeldError extends Error {
  constructor(
    readonly path: string,
    readonly pid: number,
  ) {
    super(`metadata store is locked: ${path} is held by pid ${pid}; another wharf process is using this data directory`);
    this.name = 'LockHeldError';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) === 'EPERM';
  }
}

function parsePid(text: string): number | undefined {
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * Exclusive `<dir>/LOCK` holding our pid, so two processes never append to one journal.
 * A lock whose pid is dead (crash, container restart) is taken over. Resolves with the release function.
 */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = resolve(join(dir, 'LOCK'));
  const mine = `${process.pid}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx');
      try {
        await fh.writeFile(mine);
        await fh.sync();
      } finally {
        await fh.close();
      }
      heldHere.add(path);
      return release(path);
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') throw e;
    }
    const holder = parsePid(await readFile(path, 'utf8').catch(() => ''));
    if (holder !== undefined) {
      const held = holder === process.pid ? heldHere.has(path) : isAlive(holder);
      if (held) throw new LockHeldError(path, holder);
    }
    // Stale: replace atomically, then re-read in case another process took it over at the same moment.
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, mine);
    await rename(tmp, path);
    if ((await readFile(path, 'utf8').catch(() => '')) === mine) {
      heldHere.add(path);
      return release(path);
    }
  }
  throw new Error(`metadata store: could not take over stale lock ${path}`);
}

function release(path: string): () => Promise<void> {
  let done = false;
  return async () => {
    if (done) return;
    done = true;
    heldHere.delete(path);
    const text = await readFile(path, 'utf8').catch(() => '');
    if (parsePid(text) === process.pid) await unlink(path).catch(() => undefined);
  };
}
