/**
 * `npm run test:e2e`: Playwright (playwright-core + Debian's Chromium) drives the code-server
 * workbench as a user would, with MechLens installed, and the mocha files test/e2e/*.e2e.ts
 * run here in Node (so they can also run the engine in-process to compare numbers).
 *
 * Env: MECHLENS_E2E_TIMEOUT_S (default 300, whole suite), MECHLENS_E2E_GREP, MECHLENS_SKIP_BUILD,
 * MECHLENS_KEEP_RUN_DIRS, MECHLENS_REQUIRE_VSCODE (fail instead of skip).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';
import { ARTIFACTS_DIR, REPO_ROOT, buildExtension, collectLogs, log, runMain } from './common';
import { ensureAll } from './install';
import { session, startSession, stopSession } from '../../test/e2e/session';

const E2E_DIR = path.join(REPO_ROOT, 'test', 'e2e');

async function main(): Promise<number> {
  const tStart = Date.now();
  const { codeServer, chromium } = ensureAll();
  buildExtension();
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const timeoutS = Number(process.env.MECHLENS_E2E_TIMEOUT_S ?? 300);
  // Whole-suite watchdog: a hung page must not hang CI; the exit hook in launch.ts kills the groups.
  const watchdog = setTimeout(() => {
    console.error(`\ne2e suite timed out after ${timeoutS} s (MECHLENS_E2E_TIMEOUT_S); killing code-server and Chromium`);
    void stopSession().finally(() => process.exit(124));
  }, timeoutS * 1000);
  watchdog.unref();

  let failures = 1;
  await startSession(codeServer, chromium);
  try {
    const mocha = new Mocha({ ui: 'bdd', timeout: 90_000, reporter: 'spec', bail: false });
    if (process.env.MECHLENS_E2E_GREP) mocha.grep(process.env.MECHLENS_E2E_GREP);
    // Files run in name order: each is a user story continuing in the same window.
    for (const f of fs.readdirSync(E2E_DIR).filter((n) => n.endsWith('.e2e.ts')).sort()) mocha.addFile(path.join(E2E_DIR, f));
    failures = await new Promise<number>((resolve) => mocha.run(resolve));
    if (failures) {
      const s = session();
      const where = collectLogs(s.dirs, 'e2e');
      fs.writeFileSync(path.join(where, 'browser-console.txt'), s.browser.consoleLines.join('\n'));
      await s.page.screenshot({ path: path.join(ARTIFACTS_DIR, 'e2e-failure.png') }).catch(() => undefined);
      console.error(`e2e: ${failures} failure(s); logs in ${path.relative(REPO_ROOT, where)}/, screenshot test-artifacts/e2e-failure.png`);
    }
  } finally {
    await stopSession();
    clearTimeout(watchdog);
  }
  log(`e2e suite ${failures === 0 ? 'PASSED' : 'FAILED'} in ${((Date.now() - tStart) / 1000).toFixed(1)} s`);
  return failures === 0 ? 0 : 1;
}

if (require.main === module) runMain('test:e2e', main);
