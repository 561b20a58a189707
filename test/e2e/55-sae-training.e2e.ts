/// <reference types="mocha" />
/**
 * A user opens a small "kind": "train_sae" experiment, clicks the "Train SAE" lens and watches the
 * training panel: the SAE metrics section (MSE, L0, explained variance, dead features and their
 * curves, read from the webview) until the run completes with the held-out measurement and the
 * SAE's folder. Screenshots go to test-artifacts/.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findWebview, screenshot, session } from './session';
import { SEL, closeAllEditors, quickOpen, runCommand, waitForCodeLenses } from './workbench';

const FILE = 'small-sae.experiment.json';
const TITLE = 'Small TopK SAE';
const STEPS = 200;

describe('e2e: training an SAE from the Train SAE lens', function () {
  this.timeout(240_000);

  before(() => {
    const { workspace } = session();
    const text = 'Call me Ishmael. Some years ago--never mind how long precisely--having little or no money in my purse, and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.\n';
    fs.writeFileSync(path.join(workspace, 'sae-corpus.txt'), text.repeat(120));
    fs.writeFileSync(path.join(workspace, FILE), JSON.stringify({
      kind: 'train_sae',
      title: TITLE,
      model: 'builtin:default',
      hook: 'blocks.1.hook_resid_post',
      sae: { architecture: 'topk', expansion_factor: 2, k: 8 },
      training: { steps: STEPS, batch_size: 256, lr: 0.002, dead_feature_window: 50, log_every: 10 },
      corpus: 'sae-corpus.txt',
      context_size: 64,
      corpus_tokens: 20000,
      eval_tokens: 1024,
      output: 'saes/small',
    }, null, 2) + '\n');
  });

  it('clicking "Train SAE" opens the training panel with the SAE metrics, up to the held-out measurement', async () => {
    const { page } = session();
    await closeAllEditors(page);
    await runCommand(page, 'View: Close All Editors');
    await quickOpen(page, FILE);
    const lenses = await waitForCodeLenses(page, 1);
    let texts: string[] = [];
    for (let i = 0; i < 60; i++) {
      texts = (await lenses.allInnerTexts()).map((t) => t.trim());
      if (texts.length >= 1) break;
      await page.waitForTimeout(250);
    }
    assert.deepEqual(texts, ['Train SAE'], `lens row: ${JSON.stringify(texts)}`);
    await screenshot('e2e-57-sae-training-lens');
    await page.locator(SEL.codeLens, { hasText: /^Train SAE$/ }).first().click();
    await page.locator('.tabs-container .tab', { hasText: `MechLens: Train SAE — ${TITLE}` }).first().waitFor({ state: 'visible', timeout: 60_000 });
    const frame = await findWebview(page, '.ml-training', 90_000);
    await frame.locator('.ml-training[data-status="completed"]').waitFor({ state: 'attached', timeout: 180_000 });
    const step = frame.locator('.ml-training-step');
    assert.equal(await step.getAttribute('data-step'), String(STEPS));
    const stat = async (label: string) => (await frame.locator('.ml-sae-stats .ml-stat', { hasText: label }).first().locator('.ml-stat-value').innerText()).trim();
    assert.equal(await stat('L0'), '8.00');
    const ev = Number(await stat('explained variance'));
    assert.ok(ev > 0.5 && ev <= 1, `explained variance ${ev}`);
    assert.match(await stat('dead features'), /^\d+ \/ 256$/);
    assert.match(await stat('held out'), /^EV 0\.\d+ · L0 8\.00$/);
    const charts = frame.locator('.ml-sae-charts .ml-stepchart');
    assert.equal(await charts.count(), 3);
    assert.equal(await charts.first().getAttribute('data-points'), String(STEPS / 10));
    assert.match(await frame.locator('.ml-training-checkpoint').innerText(), /saes[/\\]small$/);
    assert.ok(fs.existsSync(path.join(session().workspace, 'saes', 'small', 'cfg.json')));
    await frame.locator('.ml-sae-stats').scrollIntoViewIfNeeded();
    await screenshot('e2e-57-sae-training');
  });
});
