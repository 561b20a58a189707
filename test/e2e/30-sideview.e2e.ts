/// <reference types="mocha" />
/**
 * A user opens the MechLens side bar: the Model, Hook Points and Runs trees and the Predictions
 * webview are there, the Model tree describes the loaded model, and with the cursor on a prompt
 * line Predictions shows the engine's top next token for it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile';
import { referenceEngine, visibleToken } from './engineRef';
import { findWebview, screenshot, session } from './session';
import { closeAllEditors, firstSample, openFromExplorer } from './workbench';

describe('e2e: the MechLens side bar', function () {
  this.timeout(120_000);

  it('shows Model, Hook Points, Runs and live Predictions', async () => {
    const { page, workspace } = session();
    const sample = firstSample(workspace);
    const entry = parsePromptsFile(fs.readFileSync(path.join(workspace, sample), 'utf8')).prompts[0];
    assert.ok(entry);
    await closeAllEditors(page);
    await openFromExplorer(page, sample);
    // Put the cursor on the first prompt line: Predictions follows the cursor.
    await page.locator('.monaco-editor .view-lines .view-line', { hasText: entry.prompt.text }).first().click();

    await page.locator('.activitybar .action-item a[aria-label^="MechLens"], .activitybar .action-item[aria-label^="MechLens"]').first().click();
    const headers = page.locator('.sidebar .pane-header');
    for (const name of ['Model', 'Hook Points', 'Runs', 'Predictions']) {
      await headers.filter({ hasText: new RegExp(`^\\s*${name}`, 'i') }).first().waitFor({ state: 'visible', timeout: 30_000 });
    }
    // Expand every collapsed pane so its content renders.
    for (const h of await headers.all()) if ((await h.getAttribute('aria-expanded')) === 'false') await h.click();

    const eng = await referenceEngine();
    const modelTree = page.locator('.sidebar .pane', { has: page.locator('.pane-header', { hasText: /^\s*Model/i }) }).locator('.monaco-list-row');
    await modelTree.first().waitFor({ state: 'visible', timeout: 30_000 });
    const modelText = (await modelTree.allInnerTexts()).join(' | ');
    assert.match(modelText, new RegExp(`${eng.model.cfg.n_layers}`), `Model tree should describe the model: ${modelText}`);

    const frame = await findWebview(page, '.ml-topk-view', 60_000);
    await frame.locator('.ml-topk-view table tbody tr').first().waitFor({ state: 'visible', timeout: 60_000 });
    const ref = await eng.testPrompt(entry.prompt.text, { k: 10 });
    const top1 = await frame.locator('.ml-topk-view table tbody tr').first().locator('.ml-token').first().textContent();
    assert.equal(top1, visibleToken(ref.topK[0]!.str), `Predictions top-1 vs engine test_prompt for ${JSON.stringify(entry.prompt.text)}`);
    await screenshot('e2e-08-sidebar');
  });
});
