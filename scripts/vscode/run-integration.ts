/**
 * `npm run test:integration`: runs test/integration (mocha) INSIDE the extension host of a real
 * VS Code 1.100.3 (code-server), with MechLens loaded from this working tree as the extension
 * under development.
 *
 * code-server refuses --extensionDevelopmentPath on its command line, but the workbench accepts
 * VS Code's development `payload` URL parameter (extensionDevelopmentPath + extensionTestsPath).
 * When the tests finish, the workbench calls window.codeAutomationExit(code), which we expose
 * from Playwright; that is how the exit code crosses from the extension host to this process.
 * The suite also appends its report to $MECHLENS_TEST_REPORT, which we stream to stdout.
 *
 * Env: MECHLENS_IT_TIMEOUT_S (default 300), MECHLENS_IT_GREP (mocha --grep), MECHLENS_SKIP_BUILD,
 * MECHLENS_KEEP_RUN_DIRS, MECHLENS_REQUIRE_VSCODE (fail instead of skip).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ARTIFACTS_DIR, REPO_ROOT, buildExtension, collectLogs, log, makeRunDirs, prepareWorkspace, removeRunDirs, runMain, sleep } from './common';
import { ensureAll } from './install';
import { launchCodeServer, remoteUri, workbenchUrl, type CodeServer } from './launch';
import { launchBrowser, type Browser } from './browser';
import { compileIntegrationSuite } from './build-tests';

async function main(): Promise<number> {
  const tStart = Date.now();
  const { codeServer: install, chromium } = ensureAll();
  buildExtension();
  const suite = await compileIntegrationSuite();
  const suiteDir = path.dirname(suite);

  const dirs = makeRunDirs('mechlens-it-');
  const workspace = prepareWorkspace(dirs);
  const report = path.join(dirs.root, 'mocha-report.txt');
  fs.writeFileSync(report, '');
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const timeoutS = Number(process.env.MECHLENS_IT_TIMEOUT_S ?? 300);

  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let code = 1;
  let timer: NodeJS.Timeout | undefined;
  let reportOffset = 0;
  const flushReport = (): void => {
    const buf = fs.readFileSync(report);
    if (buf.length > reportOffset) {
      process.stdout.write(buf.subarray(reportOffset));
      reportOffset = buf.length;
    }
  };
  const poll = setInterval(flushReport, 250);
  try {
    server = await launchCodeServer({
      install,
      dirs,
      // The extension host inherits code-server's environment: the suite reads these.
      env: {
        MECHLENS_TEST_REPORT: report,
        MECHLENS_REPO_ROOT: REPO_ROOT,
        MECHLENS_TEST_WORKSPACE: workspace,
        ...(process.env.MECHLENS_IT_GREP ? { MECHLENS_IT_GREP: process.env.MECHLENS_IT_GREP } : {}),
      },
    });
    browser = await launchBrowser(chromium, dirs.chromeProfile);
    const page = browser.page;
    let resolveExit: (code: number) => void = () => undefined;
    const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));
    // Exposed before the page loads: the workbench looks these up when the tests end / log.
    await page.exposeFunction('codeAutomationExit', (c: number) => resolveExit(c));
    await page.exposeFunction('codeAutomationLog', (level: string, msg: string) => {
      // Workbench log lines: only warnings/errors are worth the noise (ENOTFOUND marketplace, vsda 404 are expected).
      if (level === 'error' || level === 'warn') {
        const text = String(msg);
        if (!/vsda|marketplace|ENOTFOUND|gallery|Failed to fetch|integration test\(s\) failed/i.test(text)) console.log(`  [workbench ${level}] ${text.slice(0, 500)}`);
      }
    });
    const timedOut = new Promise<number>((resolve) => {
      timer = setTimeout(() => {
        console.error(`\nintegration suite timed out after ${timeoutS} s (MECHLENS_IT_TIMEOUT_S)`);
        resolve(124);
      }, timeoutS * 1000);
    });
    const url = workbenchUrl(server, workspace, [
      ['extensionDevelopmentPath', remoteUri(server, REPO_ROOT)],
      ['extensionTestsPath', remoteUri(server, suite)],
    ]);
    log(`opening workbench with the test payload (suite ${path.relative(REPO_ROOT, suite)})`);
    await page.goto(url);
    code = await Promise.race([exitCode, timedOut]);
    await sleep(300);
    flushReport();
    await page.screenshot({ path: path.join(ARTIFACTS_DIR, 'integration-final.png') }).catch(() => undefined);
    if (code !== 0) {
      const where = collectLogs(dirs, 'integration');
      fs.writeFileSync(path.join(where, 'browser-console.txt'), browser.consoleLines.join('\n'));
      console.error(`integration: exit code ${code}; logs copied to ${path.relative(REPO_ROOT, where)}/`);
    }
  } finally {
    clearInterval(poll);
    if (timer) clearTimeout(timer);
    await browser?.close();
    await server?.stop();
    removeRunDirs(dirs);
    fs.rmSync(suiteDir, { recursive: true, force: true });
  }
  log(`integration suite ${code === 0 ? 'PASSED' : 'FAILED'} in ${((Date.now() - tStart) / 1000).toFixed(1)} s`);
  return code;
}

if (require.main === module) runMain('test:integration', main);
