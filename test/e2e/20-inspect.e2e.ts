/// <reference types="mocha" />
/**
 * A user selects text in the editor, right-clicks, and picks "MechLens: Inspect Prompt" from the
 * context menu. The Inspect panel must show that prompt, its tokens, and the engine's top
 * prediction (test_prompt computed here in-process).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile';
import { referenceEngine, visibleToken } from './engineRef';
import { findWebview, screenshot, session } from './session';
import { SEL, closeAllEditors, firstSample, openFromExplorer } from './workbench';

describe('e2e: Inspect Prompt from the editor context menu', function () {
  this.timeout(120_000);

  it('right-click on a selection → "MechLens: Inspect Prompt" opens the Inspect panel with the engine\'s numbers', async () => {
    const { page, workspace } = session();
    const sample = firstSample(workspace);
    const entries = parsePromptsFile(fs.readFileSync(path.join(workspace, sample), 'utf8')).prompts;
    // The second plain prompt, so this is not the panel the attention story opened.
    const entry = entries.find((e, i) => i > 0 && !e.answer) ?? entries[0];
    assert.ok(entry);
    const prompt = entry.prompt.text;

    await closeAllEditors(page);
    await openFromExplorer(page, sample);
    // Focus the editor group of the sample and select a word of the prompt by double-clicking it.
    const word = prompt.split(/\s+/).find((w) => w.length >= 4) ?? prompt.split(/\s+/)[0]!;
    const line = page.locator('.monaco-editor .view-lines .view-line', { hasText: prompt }).first();
    await line.waitFor({ state: 'visible' });
    const wordSpan = line.locator('span span', { hasText: word }).first();
    const target = (await wordSpan.count()) > 0 ? wordSpan : line;
    await target.dblclick();
    await screenshot('e2e-05-selection');

    await target.click({ button: 'right' });
    const item = page.locator(`${SEL.contextMenuItem}`, { hasText: 'MechLens: Inspect Prompt' }).first();
    await item.waitFor({ state: 'visible', timeout: 15_000 });
    await screenshot('e2e-06-context-menu');
    await item.click();

    const frame = await findWebview(page, `.ml-inspect`, 90_000);
    await page.locator('.tabs-container .tab', { hasText: `MechLens: Inspect — ${prompt.slice(0, 30)}` }).first().waitFor({ state: 'visible' });
    await frame.locator('.ml-prompt', { hasText: prompt }).first().waitFor({ state: 'visible' });

    const eng = await referenceEngine();
    const ref = await eng.testPrompt(prompt, { k: 10 });
    // Tokens section: chips with their position as a subscript.
    const chipTexts = await frame.locator('.ml-inspect .ml-section').first().locator('.ml-token').allTextContents();
    assert.deepEqual(chipTexts.map((t, i) => t.replace(new RegExp(`${i}$`), '')), ref.strTokens.map(visibleToken), 'token chips of the prompt');
    // Top-k table: first row is the engine's most likely next token, with its probability.
    const firstRow = frame.locator('table tbody tr').first();
    const tok = await firstRow.locator('.ml-token').first().textContent();
    assert.equal(tok, visibleToken(ref.topK[0]!.str), `top-1 token: webview ${tok} vs engine ${JSON.stringify(ref.topK[0]!.str)}`);
    const probTitle = await firstRow.locator('.ml-probbar').getAttribute('title');
    const shownP = Number(/p = ([\d.e+-]+)/.exec(probTitle ?? '')?.[1]);
    assert.ok(Math.abs(shownP - ref.topK[0]!.prob) < 1e-5, `top-1 probability: webview ${probTitle} vs engine ${ref.topK[0]!.prob}`);
    await screenshot('e2e-07-inspect');
  });
});
