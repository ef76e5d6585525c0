/**
 * Builds the UI (`tools/build-ui.ts`, as `make build` does) unless dist/ui is newer than every source file.
 * The build empties dist/ui first: under `make test` (which builds before the suites run) a suite must not
 * rebuild while another suite's wharf is serving from it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

export function ensureUiBuilt(): void {
  let built = 0;
  try {
    built = statSync(join(ROOT, 'dist/ui/index.html')).mtimeMs;
  } catch {
    // not built
  }
  const sources = Math.max(newest(join(ROOT, 'src/ui')), statSync(join(ROOT, 'tools/build-ui.ts')).mtimeMs);
  if (built > sources) return;
  execFileSync('npx', ['tsx', 'tools/build-ui.ts'], { cwd: ROOT, stdio: 'pipe' });
}
