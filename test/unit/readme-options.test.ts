import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describeOptions } from '../../src/config/index.js';

// Operators script against these names: the README must document every option the loader accepts.
test('README documents every configuration option with its env name and default', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('<!-- options:begin');
  const end = readme.indexOf('<!-- options:end -->');
  assert.ok(start > 0 && end > start, 'README has the options table markers');
  const table = readme.slice(start, end);
  const missing: string[] = [];
  for (const o of describeOptions()) {
    const row = table.split('\n').find((l) => l.startsWith(`| \`${o.key}\` |`));
    if (!row) {
      missing.push(o.key);
      continue;
    }
    if (o.env) assert.ok(row.includes(`\`${o.env}\``), `${o.key}: env ${o.env} missing from its row`);
    if (o.default) assert.ok(row.includes(`\`${o.default}\``), `${o.key}: default ${o.default} missing from its row`);
  }
  assert.deepEqual(missing, [], 'options missing from README');
});
