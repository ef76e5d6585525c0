/**
 * Builds the web UI: src/ui/main.tsx and src/ui/styles.css bundled and minified by esbuild into
 * dist/ui/assets/ with content-hashed names, and dist/ui/index.html pointing at them (no inline script,
 * so the page runs under a strict Content-Security-Policy). Prints the bundle's gzipped size.
 */
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'ui');

await rm(out, { recursive: true, force: true });
await mkdir(join(out, 'assets'), { recursive: true });
const result = await build({
  entryPoints: [join(root, 'src/ui/main.tsx'), join(root, 'src/ui/styles.css')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name].[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const files = Object.keys(result.metafile.outputs).map((f) => basename(f));
const js = files.find((f) => f.endsWith('.js'));
const css = files.find((f) => f.endsWith('.css'));
if (!js || !css) throw new Error(`UI build produced ${files.join(', ')}`);
const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>wharf</title>
<link rel="stylesheet" href="/assets/${css}">
<script type="module" src="/assets/${js}"></script>
</head>
<body>
<div id="app"><noscript>The wharf web UI needs JavaScript. The registry API is at /v2/.</noscript></div>
</body>
</html>
`;
await writeFile(join(out, 'index.html'), html);
let raw = 0;
let gz = 0;
for (const f of [js, css]) {
  const bytes = await readFile(join(out, 'assets', f));
  raw += bytes.length;
  gz += gzipSync(bytes, { level: 9 }).length;
}
console.log(`web UI built in dist/ui: ${js}, ${css}; ${(raw / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzipped`);
