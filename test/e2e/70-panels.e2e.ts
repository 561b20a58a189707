/// <reference types="mocha" />
/**
 * Where results open, as in VS Code's own previews: Inspect, Attention and Logit lens share one
 * results column beside the editor; a later Inspect replaces the earlier Inspect panel unless it
 * is locked (the lock button / "MechLens: Lock Panel"); after a window reload the panels come
 * back showing their runs (the webview serializer).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile';
import { waitForWorkbench } from '../../scripts/vscode/browser';
import { findWebview, screenshot, session } from './session';
import { closeAllEditors, firstSample, openFromExplorer, runCommand } from './workbench';

const tabs = (page: Page, text: string) => page.locator('.tabs-container .tab', { hasText: text });
const groups = (page: Page) => page.locator('.part.editor .editor-group-container');

/** Puts the cursor on the prompt's line in the sample's editor (focusing that editor). */
async function cursorOn(page: Page, sample: string, prompt: string): Promise<void> {
  await page.locator('.tabs-container .tab', { hasText: sample }).first().click();
  const line = page.locator('.monaco-editor .view-lines .view-line', { hasText: prompt }).first();
  await line.waitFor({ state: 'visible' });
  await line.click();
}

describe('e2e: one results column, panels reused unless locked, restored after a reload', function () {
  this.timeout(240_000);

  it('Inspect, Attention and Logit lens share one column; a second Inspect replaces the first; a locked one stays; a reload restores them', async () => {
    const { page, workspace } = session();
    const sample = firstSample(workspace);
    const prompts = parsePromptsFile(fs.readFileSync(path.join(workspace, sample), 'utf8'))
      .prompts.map((e) => e.prompt.text)
      .filter((t) => t.length >= 8);
    const [a, b] = [prompts[0]!, prompts.find((t) => !t.startsWith(prompts[0]!.slice(0, 30)) && t.slice(0, 30) !== prompts[0]!.slice(0, 30))!];
    assert.ok(a && b, `two prompts with different beginnings in ${sample}`);
    const inspectTab = (p: string) => tabs(page, `MechLens: Inspect — ${p.slice(0, 30)}`);

    await closeAllEditors(page);
    await openFromExplorer(page, sample);

    await cursorOn(page, sample, a);
    await runCommand(page, 'MechLens: Inspect Prompt');
    await inspectTab(a).first().waitFor({ state: 'visible', timeout: 90_000 });
    await findWebview(page, '.ml-inspect', 90_000);

    await cursorOn(page, sample, b);
    await runCommand(page, 'MechLens: Inspect Prompt');
    await inspectTab(b).first().waitFor({ state: 'visible', timeout: 60_000 });
    await inspectTab(a).first().waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await tabs(page, 'MechLens: Inspect — ').count(), 1, 'the second Inspect replaced the first');

    await cursorOn(page, sample, b);
    await runCommand(page, 'MechLens: Show Attention');
    await tabs(page, 'MechLens: Attention — ').first().waitFor({ state: 'visible', timeout: 60_000 });
    await cursorOn(page, sample, b);
    await runCommand(page, 'MechLens: Show Logit Lens and Direct Logit Attribution');
    await findWebview(page, '[data-kind="attribution"], .ml-attribution', 60_000).catch(() => undefined);
    assert.equal(await groups(page).count(), 2, 'the editor and one results column');
    await screenshot('e2e-70-one-results-column');

    // Lock the Inspect panel: the next Inspect opens a second one beside it, in the same column.
    // With the panel focused, the palette key goes to the webview: use the title-bar button, as a user does.
    await inspectTab(b).first().click();
    const lockButton = page.locator('.editor-group-container .editor-actions .action-label[aria-label^="MechLens: Lock Panel"]').first();
    await lockButton.waitFor({ state: 'visible', timeout: 10_000 });
    await lockButton.click();
    await tabs(page, `🔒 MechLens: Inspect — ${b.slice(0, 30)}`).first().waitFor({ state: 'visible', timeout: 10_000 });
    await cursorOn(page, sample, a);
    await runCommand(page, 'MechLens: Inspect Prompt');
    await inspectTab(a).first().waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await tabs(page, 'MechLens: Inspect — ').count(), 2, 'the locked Inspect panel stays beside the new one');
    assert.equal(await groups(page).count(), 2, 'still one results column');
    const inspectFrame = await findWebview(page, '.ml-inspect', 60_000);
    await inspectFrame.locator('.ml-prompt', { hasText: a }).first().waitFor({ state: 'visible', timeout: 30_000 });
    await screenshot('e2e-71-locked-inspect');

    // A window reload: VS Code hands the panels back and each shows its saved run again.
    // "Developer: Reload Window" (not a browser reload) lets the workbench save its editors and the
    // webviews' states first, as a user's reload does.
    await cursorOn(page, sample, a);
    const loaded = page.waitForEvent('load', { timeout: 60_000 });
    await runCommand(page, 'Developer: Reload Window');
    await loaded;
    await waitForWorkbench(page);
    await inspectTab(a).first().waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await tabs(page, 'MechLens: Inspect — ').count(), 2, 'both Inspect panels are restored');
    await tabs(page, `🔒 MechLens: Inspect — ${b.slice(0, 30)}`).first().waitFor({ state: 'visible', timeout: 10_000 });
    await inspectTab(a).first().click();
    const restored = await findWebview(page, '.ml-inspect', 90_000);
    await restored.locator('.ml-prompt', { hasText: a }).first().waitFor({ state: 'visible', timeout: 30_000 });
    await screenshot('e2e-72-restored-after-reload');
  });
});
