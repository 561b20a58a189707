/**
 * Compiles test/integration/** for the extension host. The host loads plain CommonJS, so each
 * `*.test.ts` and the mocha entry `index.ts` are bundled by esbuild (already a dev dependency)
 * into .vscode-test/integration/. That folder lies inside the repo on purpose:
 *   - `require('mocha')` and `require('onnxruntime-node')` resolve from the repo's node_modules;
 *   - VS Code hands a module inside an extension's folder that extension's `vscode` API object,
 *     so the tests see (and can observe) the same `vscode.window` the extension uses.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';
import { CACHE_DIR, REPO_ROOT, log } from './common';

export const INTEGRATION_SRC = path.join(REPO_ROOT, 'test', 'integration');
export const INTEGRATION_OUT = path.join(CACHE_DIR, 'integration');

/**
 * Returns the compiled mocha entry (without `.js`, as VS Code's extensionTestsPath expects), in a
 * folder of its own per run (runs side by side must not rebuild each other's files); the caller
 * removes that folder when done.
 */
export async function compileIntegrationSuite(): Promise<string> {
  const outdir = path.join(INTEGRATION_OUT, `run-${process.pid}-${Date.now().toString(36)}`);
  const t0 = Date.now();
  const entries = fs
    .readdirSync(INTEGRATION_SRC)
    .filter((f) => f === 'index.ts' || f.endsWith('.test.ts'))
    .map((f) => path.join(INTEGRATION_SRC, f));
  if (!entries.some((e) => e.endsWith('index.ts'))) throw new Error(`${INTEGRATION_SRC}/index.ts is missing`);
  await build({
    entryPoints: entries,
    outdir,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'inline', // stack traces in failures point at the .ts lines
    // Provided by the host (vscode) or loaded from node_modules at run time (native/large).
    external: ['vscode', 'mocha', 'onnxruntime-node', '@tensorflow/*'],
    logLevel: 'warning',
  });
  log(`compiled ${entries.length} integration files in ${Date.now() - t0} ms`);
  return path.join(outdir, 'index');
}
