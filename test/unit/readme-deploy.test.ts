import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };

test('README names the Node version package.json requires, and no Debian 12 route to an older one', () => {
  const min = /^>=(\d+\.\d+\.\d+)$/.exec(pkg.engines.node)?.[1];
  assert.ok(min, pkg.engines.node);
  assert.ok(readme.includes(`≥ ${min}`), `README states Node ≥ ${min}`);
  // Debian 12's nodejs is 18.x: a bare apt-get of it is only right on a release that ships Node 20
  for (const m of readme.matchAll(/^.*apt-get install[^`\n]*\bnodejs\b.*$/gm)) {
    assert.match(m[0], /nodesource|trixie|Debian 13/i, `an apt-get of nodejs that names no source of Node 20: ${m[0]}`);
  }
});

test('every docker compose command in README names deploy/compose.yaml (there is none at the repository root)', () => {
  const commands = [...readme.matchAll(/docker compose [^`\n]*/g)].map((m) => m[0]);
  assert.ok(commands.length > 0);
  for (const c of commands) assert.match(c, /-f deploy\/compose\.yaml/, c);
});
