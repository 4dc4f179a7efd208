// Why: one small, dependency-light build: esbuild bundles src/main.tsx and the CSS into
// dist/, and copies index.html. The server embeds dist/ (see src/web_assets.rs).
import * as esbuild from 'esbuild';
import { mkdirSync, copyFileSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist', { recursive: true });
await esbuild.build({
  entryPoints: ['src/main.tsx', 'src/styles.css'],
  bundle: true,
  minify: true,
  sourcemap: false,
  target: 'es2020',
  outdir: 'dist',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  logLevel: 'info',
});
copyFileSync('index.html', 'dist/index.html');
copyFileSync('node_modules/@xterm/xterm/css/xterm.css', 'dist/xterm.css');
