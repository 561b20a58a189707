/**
 * The one code-server + Chromium session the e2e tests share (started by
 * scripts/vscode/run-e2e.ts before mocha runs, stopped after). Starting a workbench costs a few
 * seconds; the tests are ordered user stories in one window, like a person working.
 *
 * MechLens is installed the way a user has it after installing the extension: a folder in the
 * extensions dir (a symlink to this working tree), not as an extension under development.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FrameLocator, Page } from 'playwright-core';
import { ARTIFACTS_DIR, log, makeRunDirs, prepareWorkspace, removeRunDirs, type RunDirs } from '../../scripts/vscode/common';
import { launchCodeServer, linkExtension, workbenchUrl, type CodeServer } from '../../scripts/vscode/launch';
import { launchBrowser, waitForWorkbench, type Browser } from '../../scripts/vscode/browser';
import type { CodeServerInstall } from '../../scripts/vscode/install';

export interface E2ESession {
  dirs: RunDirs;
  workspace: string;
  server: CodeServer;
  browser: Browser;
  page: Page;
}

let current: E2ESession | undefined;

export async function startSession(install: CodeServerInstall, chromium: string): Promise<E2ESession> {
  const dirs = makeRunDirs('mechlens-e2e-');
  const workspace = prepareWorkspace(dirs);
  linkExtension(dirs);
  let server: CodeServer | undefined;
  try {
    server = await launchCodeServer({ install, dirs, settings: { 'mechlens.model': 'builtin:default' } });
    const browser = await launchBrowser(chromium, dirs.chromeProfile);
    const page = browser.page;
    await page.goto(workbenchUrl(server, workspace));
    await waitForWorkbench(page);
    current = { dirs, workspace, server, browser, page };
    return current;
  } catch (e) {
    await server?.stop();
    removeRunDirs(dirs);
    throw e;
  }
}

export function session(): E2ESession {
  if (!current) throw new Error('no e2e session: run the e2e suite through scripts/vscode/run-e2e.ts (npm run test:e2e)');
  return current;
}

export async function stopSession(): Promise<void> {
  const s = current;
  current = undefined;
  if (!s) return;
  await s.browser.close();
  await s.server.stop();
  removeRunDirs(s.dirs);
}

/** Saves a screenshot into test-artifacts/ and returns its path. */
export async function screenshot(name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await session().page.screenshot({ path: file });
  log(`screenshot ${path.relative(process.cwd(), file)}`);
  return file;
}

/**
 * The content frame of the webview that renders `selector`. VS Code nests two iframes per
 * webview: the outer `iframe.webview.ready` (VS Code's host page) and the extension's document in
 * `#active-frame`. Panels and the Predictions side view are all webviews, so we pick by content.
 */
export async function findWebview(page: Page, selector: string, timeoutMs = 60_000): Promise<FrameLocator> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const outer = page.locator('iframe.webview.ready');
    const n = await outer.count();
    for (let i = n - 1; i >= 0; i--) {
      const inner = outer.nth(i).contentFrame().frameLocator('iframe#active-frame');
      if ((await inner.locator(selector).count().catch(() => 0)) > 0) return inner;
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no webview renders ${selector} within ${timeoutMs} ms (${await page.locator('iframe.webview.ready').count()} webviews are ready)`);
}
