/**
 * What a user does in the workbench, as Playwright steps with the selectors that VS Code 1.100
 * renders (ENVIRONMENT.md lists the stable ones). Each step waits for its visible effect rather
 * than sleeping.
 */
import * as fs from 'node:fs';
import type { Locator, Page } from 'playwright-core';

export const SEL = {
  workbench: '.monaco-workbench',
  explorerViewlet: '.explorer-viewlet',
  explorerRow: '.explorer-folders-view .monaco-list-row',
  codeLens: '.monaco-editor .codelens-decoration a',
  quickInput: '.quick-input-widget',
  quickInputBox: '.quick-input-widget .quick-input-box input',
  contextMenuItem: '.context-view .monaco-menu .action-item',
  activeEditorTab: '.tabs-container .tab.active',
  notification: '.notifications-toasts .notification-toast',
};

const isMac = process.platform === 'darwin';
export const MOD = isMac ? 'Meta' : 'Control';

/**
 * Opens a quick input with `key`, types `text` and picks the first row showing `rowText`. A row
 * that is slow to come is asked for again, three times at most: right after the workbench opens
 * the palette can come up before every contributed command is listed (seen once in CI on a cold
 * start), and Quick Open can miss a file written a moment ago on a busy machine (seen once in CI:
 * no row in 30 s).
 */
async function pickInQuickInput(page: Page, key: string, text: string, rowText: string): Promise<void> {
  const box = page.locator(SEL.quickInputBox);
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: rowText }).first();
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press(key);
    await box.waitFor({ state: 'visible' });
    await box.fill(text);
    try {
      await row.waitFor({ state: 'visible', timeout: 15_000 });
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
      await page.keyboard.press('Escape');
      await page.waitForTimeout(1_000);
    }
  }
  await page.keyboard.press('Enter');
  await page.locator(SEL.quickInput).waitFor({ state: 'hidden' });
}

/** Runs a command through the command palette, by its title as shown there. */
export async function runCommand(page: Page, title: string): Promise<void> {
  await pickInQuickInput(page, 'F1', `>${title}`, title);
}

/** Opens the Explorer (it may be hidden by another view container). */
export async function showExplorer(page: Page): Promise<void> {
  // The pane container, not a row: an empty workspace has no rows.
  if (!(await page.locator(SEL.explorerViewlet).isVisible())) await runCommand(page, 'View: Show Explorer');
  await page.locator(SEL.explorerViewlet).waitFor({ state: 'visible' });
}

export function explorerRow(page: Page, label: string): Locator {
  return page.locator(SEL.explorerRow, { has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRe(label)}$`) }) });
}

/** Single-clicks a file in the Explorer; waits until its editor tab is the active one. */
export async function openFromExplorer(page: Page, fileName: string): Promise<void> {
  await showExplorer(page);
  const row = explorerRow(page, fileName);
  // A file written just after the workbench opened can be missed by code-server's file watcher
  // (seen for the first file a story writes, so the Explorer never lists it): Quick Open, which
  // searches the disk, opens it instead.
  try {
    await row.waitFor({ state: 'visible', timeout: 10_000 });
  } catch {
    await quickOpen(page, fileName);
    return;
  }
  await row.click();
  await page.locator(SEL.activeEditorTab, { hasText: fileName }).first().waitFor({ state: 'visible' });
}

/** Opens a file of the workspace with Quick Open (Ctrl/Cmd+P); waits until its editor tab is the active one. */
export async function quickOpen(page: Page, fileName: string): Promise<void> {
  await pickInQuickInput(page, `${MOD}+P`, fileName, fileName);
  await page.locator(SEL.activeEditorTab, { hasText: fileName }).first().waitFor({ state: 'visible' });
}

export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Waits until at least `min` CodeLens links are rendered (they re-render after activation). */
export async function waitForCodeLenses(page: Page, min: number, timeoutMs = 60_000): Promise<Locator> {
  const lenses = page.locator(SEL.codeLens);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await lenses.count()) >= min) return lenses;
    await page.waitForTimeout(200);
  }
  throw new Error(`expected at least ${min} CodeLens links within ${timeoutMs} ms, saw ${await lenses.count()}: ${JSON.stringify(await lenses.allTextContents())}`);
}

/**
 * The CodeLens texts once `ready` holds for them, or the last texts seen after `timeoutMs`.
 * VS Code re-renders a lens row when its provider refreshes (e.g. when the model finishes
 * loading), so a count followed by a separate read can see the row mid-refresh (empty).
 */
export async function waitForLensTexts(page: Page, ready: (texts: string[]) => boolean, timeoutMs = 60_000): Promise<string[]> {
  const lenses = page.locator(SEL.codeLens);
  const deadline = Date.now() + timeoutMs;
  let texts: string[] = [];
  while (Date.now() < deadline) {
    texts = (await lenses.allInnerTexts()).map((t) => t.trim());
    if (ready(texts)) return texts;
    await page.waitForTimeout(200);
  }
  return texts;
}

/** Text of all visible notification toasts (errors from the extension land here). */
export async function notificationTexts(page: Page): Promise<string[]> {
  return page.locator(SEL.notification).allInnerTexts();
}

/** The sample a new user opens first: basics.prompts, or the first *.prompts there is. */
export function firstSample(workspace: string): string {
  const files = fs.readdirSync(workspace).filter((f) => f.endsWith('.prompts')).sort();
  if (files.length === 0) throw new Error('samples/ holds no *.prompts file');
  return files.includes('basics.prompts') ? 'basics.prompts' : files[0]!;
}

/** Closes every editor and panel, so a story starts from one editor group. */
export async function closeAllEditors(page: Page): Promise<void> {
  await runCommand(page, 'View: Close All Editors');
  await page.locator('.tabs-container .tab').first().waitFor({ state: 'detached', timeout: 10_000 }).catch(() => undefined);
}
