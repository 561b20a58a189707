/**
 * The same test/integration suite under desktop VS Code via @vscode/test-electron, for CI
 * machines that can download VS Code (update.code.visualstudio.com). It cannot run where VS Code
 * cannot be downloaded (this workplace): then it fails with a message that says so and points
 * to `npm run test:integration`, which runs the identical suite in code-server.
 *
 * Usage: node --import tsx scripts/vscode/run-test-electron.ts
 * Env: MECHLENS_VSCODE_VERSION (default 'stable'; e.g. '1.100.3' to match the code-server run),
 *      MECHLENS_VSCODE_EXECUTABLE (use an installed VS Code instead of downloading),
 *      MECHLENS_IT_GREP, MECHLENS_SKIP_BUILD, MECHLENS_KEEP_RUN_DIRS.
 * Linux without a display: re-runs itself under `xvfb-run -a` when that exists (apt-get install xvfb).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { downloadAndUnzipVSCode, runTests, TestRunFailedError } from '@vscode/test-electron';
import { CACHE_DIR, REPO_ROOT, buildExtension, isRoot, log, makeRunDirs, prepareWorkspace, removeRunDirs, which } from './common';
import { compileIntegrationSuite } from './build-tests';
import { writeUserSettings } from './launch';

async function obtainVscode(): Promise<string> {
  const local = process.env.MECHLENS_VSCODE_EXECUTABLE;
  if (local) return local;
  const version = process.env.MECHLENS_VSCODE_VERSION ?? 'stable';
  try {
    return await downloadAndUnzipVSCode({ version, cachePath: CACHE_DIR, timeout: 30_000 });
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new Error(
      [
        `could not download VS Code ${version} for @vscode/test-electron: ${reason}`,
        'This runner needs network access to update.code.visualstudio.com (or MECHLENS_VSCODE_EXECUTABLE=/path/to/code).',
        'Without it, run the same suite in code-server instead: npm run test:integration',
      ].join('\n  '),
    );
  }
}

async function main(): Promise<number> {
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY && !process.env.MECHLENS_UNDER_XVFB) {
    // Electron needs a display; a CI container has none.
    if (which('xvfb-run')) {
      log('no display: re-running under xvfb-run -a');
      const r = spawnSync('xvfb-run', ['-a', process.execPath, ...process.execArgv, __filename], { stdio: 'inherit', env: { ...process.env, MECHLENS_UNDER_XVFB: '1' } });
      return r.status ?? 1;
    }
    log('warning: no DISPLAY and no xvfb-run; VS Code will probably fail to start (apt-get install xvfb)');
  }
  const vscodeExecutablePath = await obtainVscode();
  buildExtension();
  const suite = await compileIntegrationSuite();
  const dirs = makeRunDirs('mechlens-te-');
  const workspace = prepareWorkspace(dirs);
  writeUserSettings(dirs, {});
  try {
    const code = await runTests({
      vscodeExecutablePath,
      extensionDevelopmentPath: REPO_ROOT,
      extensionTestsPath: suite,
      launchArgs: [
        workspace,
        '--user-data-dir', dirs.userData,
        '--extensions-dir', dirs.extensions,
        '--disable-workspace-trust',
        '--skip-welcome',
        '--skip-release-notes',
        '--disable-updates',
        '--disable-gpu',
        ...(isRoot() ? ['--no-sandbox'] : []), // Chromium's sandbox refuses root (CI containers)
      ],
      extensionTestsEnv: {
        XDG_CONFIG_HOME: dirs.xdgConfig,
        XDG_DATA_HOME: dirs.xdgData,
        XDG_CACHE_HOME: dirs.xdgCache,
        TMPDIR: dirs.tmp,
        MECHLENS_REPO_ROOT: REPO_ROOT,
        MECHLENS_TEST_WORKSPACE: workspace,
        ...(process.env.MECHLENS_IT_GREP ? { MECHLENS_IT_GREP: process.env.MECHLENS_IT_GREP } : {}),
      },
    });
    return code;
  } catch (e) {
    if (e instanceof TestRunFailedError) {
      console.error(`integration suite failed under VS Code (exit ${e.code ?? e.signal})`);
      return 1;
    }
    throw e;
  } finally {
    removeRunDirs(dirs);
    fs.rmSync(path.dirname(suite), { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`\nrun-test-electron FAILED:\n  ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
