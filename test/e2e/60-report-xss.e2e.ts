/// <reference types="mocha" />
/**
 * The shareable HTML report runs no script, whatever the experiment file says: a title, prompt,
 * answer, group name, label and note carrying HTML and script are shown as text in real
 * Chromium (the report keeps `default-src 'none'` and escapes everything it writes).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderReport } from '../../src/engine/experiments/report';
import type { RunRecord } from '../../src/protocol/runs';
import { findWebview, screenshot, session } from './session';
import { SEL, closeAllEditors, openFromExplorer, showExplorer, waitForCodeLenses, waitForLensTexts } from './workbench';
import type { FrameLocator, Page } from 'playwright-core';

const EVIL = [
  `<img src=x onerror="window.__pwned=(window.__pwned||0)+1">`,
  `</title><script>window.__pwned=(window.__pwned||0)+1</script>`,
  `"><svg onload="window.__pwned=1">`,
  `<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>`,
];

function evilRecord(): RunRecord {
  const e = (i: number) => EVIL[i % EVIL.length]!;
  const heat = { title: e(0), rowAxis: e(1), colAxis: e(2), rowLabels: [e(3), 'L1'], colLabels: [e(0), 'b'], values: [[0.5, -0.25], [1, 0]], valueLabel: e(1) };
  return {
    id: 'r', kind: 'experiment', title: e(1), createdAt: '2026-01-01T00:00:00Z', engineVersion: '0.1.0',
    model: { spec: e(2), name: e(3), processing: 'default' },
    inputs: { prompts: [e(0)], corrupted: [e(1)], groups: [{ name: e(2), prompts: [{ prompt: e(0), corrupted: e(1), answer: e(2), wrong: e(3) }] }] },
    state: {
      kind: 'experiment', title: e(1), model: e(3), description: e(0), metric: e(2), file: e(3),
      sections: [{
        index: 0, kind: 'patch', group: e(2), title: e(0), elapsedMs: 1, notes: [e(1)],
        checks: [{ what: e(3), expected: e(0), actual: 1, tolerance: 0, ok: false }],
        blocks: [
          { type: 'heatmap', data: heat },
          { type: 'bars', title: e(1), labels: [e(2), e(3)], values: [1, -1], valueLabel: e(0) },
          { type: 'line', title: e(2), labels: [e(0), e(1)], values: [0, 1], xAxis: e(3), yAxis: e(0) },
          { type: 'table', title: e(3), columns: [e(0)], rows: [[e(1)]] },
          { type: 'tokens', title: e(0), tokens: [e(1), e(2)], values: [1, -1], valueLabel: e(3) },
          { type: 'stats', items: [{ label: e(0), value: e(1), title: e(2) }] },
          { type: 'topk', title: e(1), strTokens: [e(2)], entries: [{ token: 1, str: e(3), logit: 1, prob: 0.5 }] },
        ],
      }],
    },
  } as unknown as RunRecord;
}

/**
 * Closes the MechLens panels tab by tab, then every editor. "Close All Editors" with panels in a
 * second column can empty the first column first, so the panels' column becomes column 1 and the
 * extension remembers that as the results column (later stories then open panels over the editor).
 */
async function closeEverything(page: Page): Promise<void> {
  const panelTabs = page.locator('.tabs-container .tab', { hasText: 'MechLens:' });
  for (let i = 0; i < 20 && (await panelTabs.count()) > 0; i++) {
    const tab = panelTabs.first();
    await tab.hover();
    await tab.locator('.tab-actions .action-label').first().click();
    await page.waitForTimeout(200);
  }
  await closeAllEditors(page);
}

describe('e2e: hostile text runs no script, in the report and in the panels', function () {
  this.timeout(120_000);

  it('shows hostile titles, prompts, labels and notes as text in Chromium, and no script runs', async () => {
  const html = renderReport(evilRecord());
  assert.match(html, /default-src 'none'/);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-xss-')), 'report.html');
  fs.writeFileSync(file, html);
  // A page of its own in the session's Chromium, beside the workbench.
  const page = await session().page.context().newPage();
  try {
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(`file://${file}`);
    await page.waitForTimeout(300);
    assert.equal(await page.evaluate('window.__pwned'), undefined, 'a script ran in the report');
    assert.deepEqual(dialogs, []);
    // The hostile strings are there, as text: no element they would have created exists.
    const text = (await page.evaluate('document.body.innerText')) as string;
    for (const s of EVIL) assert.ok(text.includes(s), `shown as text: ${s}`);
    assert.equal(await page.evaluate("document.querySelectorAll('body img, body script, body iframe, body svg[onload]').length"), 0);
    assert.equal(await page.title(), `${EVIL[1]} — MechLens report`);
  } finally {
    await page.close();
  }
  });

  it('a prompt carrying HTML and script shows as text in its panel and runs nothing', async () => {
    const { page, workspace } = session();
    const hostile = '<img src=x onerror=alert(1)><script>alert(2)</script><b>the cat</b>';
    const file = 'hostile.prompts';
    fs.writeFileSync(path.join(workspace, file), `${hostile}\n`);
    const dialogs: string[] = [];
    const onDialog = (d: { message(): string; dismiss(): Promise<void> }) => {
      dialogs.push(d.message());
      void d.dismiss();
    };
    page.on('dialog', onDialog);
    try {
      await closeEverything(page);
      await openFromExplorer(page, file);
      await waitForLensTexts(page, (t) => t[0] === 'Inspect');
      await page.locator(SEL.codeLens, { hasText: /^Inspect$/ }).first().click();
      // builtin:default's characters do not include < = > /, so the panel shows the tokenizer's
      // error with the prompt in its title: the path a user meets with such a prompt.
      const frame = await findWebview(page, '.ml-error, .ml-inspect', 90_000);
      const shown = await frame.locator('.ml-error h1, .ml-inspect .ml-prompt').first().innerText();
      assert.ok(shown.includes('<img src=x onerror=alert(1)>'), `the hostile prompt is shown as text: ${shown}`);
      assert.equal(await frame.locator('img[src="x"], b:text-is("the cat")').count(), 0, 'no element was made from the prompt');
      await page.waitForTimeout(500);
      assert.deepEqual(dialogs, [], 'no script ran');
      await screenshot('e2e-60-hostile-prompt');
    } finally {
      page.off('dialog', onDialog);
      await closeEverything(page);
      fs.rmSync(path.join(workspace, file), { force: true });
    }
  });

  // builtin:toy reads every printable character (builtin:default has no < = > /), so a hostile
  // prompt reaches every panel with its numbers, not only the tokenizer's error.
  describe('on builtin:toy, through every panel', function () {
    /** Each element the markup would create carries class "pwned"; a script would raise a dialog. */
    const PROMPT = '<img class=pwned src=x onerror=alert(1)><b class=pwned>hi</b><script>alert(2)</script>';
    const TITLE = '<svg class=pwned onload=alert(3)></svg></title><script>alert(4)</script>';
    const LABEL = '<i class=pwned onmouseover=alert(5)>grp</i>';
    const dialogs: string[] = [];
    const onDialog = (d: { message(): string; dismiss(): Promise<void> }) => {
      dialogs.push(d.message());
      void d.dismiss();
    };
    let settingsFile = '';

    before(async () => {
      const { page, workspace } = session();
      page.on('dialog', onDialog);
      // A workspace setting (removed after): the model every panel and the Predictions view use.
      fs.mkdirSync(path.join(workspace, '.vscode'), { recursive: true });
      settingsFile = path.join(workspace, '.vscode', 'settings.json');
      fs.writeFileSync(settingsFile, JSON.stringify({ 'mechlens.model': 'builtin:toy' }));
      await page.waitForTimeout(1_000);
    });

    after(async () => {
      const { page, workspace } = session();
      page.off('dialog', onDialog);
      fs.rmSync(settingsFile, { force: true });
      for (const f of ['hostile-toy.prompts', 'hostile.experiment.json']) fs.rmSync(path.join(workspace, f), { force: true });
      await closeEverything(page).catch(() => undefined);
      // The stories after this one start from builtin:default, loaded, with the Explorer showing.
      await page.locator('.statusbar-item', { hasText: 'builtin:toy' }).first().waitFor({ state: 'detached', timeout: 90_000 });
      await showExplorer(page);
    });

    /** The hostile text is on the page as text, nothing was built from it, and no script ran. */
    async function assertInert(frame: FrameLocator | Page, what: string, texts: string[]): Promise<void> {
      const body = await frame.locator('body').innerText();
      for (const t of texts) assert.ok(body.includes(t), `${what}: shows ${JSON.stringify(t)} as text`);
      assert.equal(await frame.locator('.pwned, img[src="x"], svg[onload], [onerror], [onmouseover]').count(), 0, `${what}: no element was made from the hostile text`);
      await session().page.waitForTimeout(300);
      assert.deepEqual(dialogs, [], `${what}: no script ran`);
    }

    it('Inspect (top-k), Attention, Logit lens / DLA and Predictions show a hostile prompt as text', async () => {
      const { page, workspace } = session();
      fs.writeFileSync(path.join(workspace, 'hostile-toy.prompts'), `${PROMPT} -> "<" | ">"\n`);
      await closeEverything(page);
      await openFromExplorer(page, 'hostile-toy.prompts');
      await waitForCodeLenses(page, 3);
      await waitForLensTexts(page, (t) => t[0] === 'Inspect' && t.length >= 3, 90_000);
      const panels: [string, string, string][] = [
        ['Inspect', '.ml-inspect table tbody tr', 'inspect'],
        ['Attention', '.ml-attn-grid', 'attention'],
        ['Logit lens', '.ml-attribution', 'attribution'],
      ];
      for (const [lens, selector, name] of panels) {
        await page.locator(SEL.codeLens, { hasText: new RegExp(`^${lens}$`) }).first().click();
        const frame = await findWebview(page, selector, 120_000);
        await assertInert(frame, `the ${lens} panel`, [name === 'inspect' ? PROMPT : PROMPT.slice(0, 30)]);
        await screenshot(`e2e-61-hostile-${name}`);
        // Back to the prompts file for the next lens.
        await page.locator('.tabs-container .tab', { hasText: 'hostile-toy.prompts' }).first().click();
      }
      // The Predictions side view follows the cursor onto the hostile line.
      await page.locator('.monaco-editor .view-lines .view-line').first().click();
      await page.locator('.activitybar .action-item a[aria-label^="MechLens"], .activitybar .action-item[aria-label^="MechLens"]').first().click();
      const side = await findWebview(page, '.ml-topk-view table tbody tr', 60_000);
      await assertInert(side, 'the Predictions view', []);
      await assertInert(page, 'the workbench', []);
    });

    it('an experiment with a hostile title, group, analysis titles, prompt and answers: the results panel and the Runs view show them as text', async () => {
      const { page, workspace } = session();
      const corrupted = PROMPT.replace('hi', 'ho');
      const experiment = {
        model: 'builtin:toy',
        title: TITLE,
        description: LABEL,
        groups: [{ name: LABEL, prompts: [{ prompt: PROMPT, corrupted, answer: '<', wrong: '>' }] }],
        analyses: [
          { kind: 'test_prompt', title: TITLE },
          { kind: 'test_prompt', text: PROMPT, answer: '<' },
          { kind: 'logit_diff' },
          { kind: 'layer_dla', title: LABEL },
          { kind: 'head_dla' },
          { kind: 'logit_lens' },
          { kind: 'attention', heads: ['L0H0'], title: TITLE },
          { kind: 'patch', hook: 'resid_pre', title: LABEL },
        ],
      };
      fs.writeFileSync(path.join(workspace, 'hostile.experiment.json'), JSON.stringify(experiment, null, 2));
      await closeEverything(page);
      await openFromExplorer(page, 'hostile.experiment.json');
      await waitForLensTexts(page, (t) => t[0] === 'Run', 60_000);
      await page.locator(SEL.codeLens, { hasText: /^Run$/ }).first().click();
      const frame = await findWebview(page, '.ml-experiment .ml-exp-section[data-kind="patch"] canvas', 180_000);
      assert.equal(await frame.locator('.ml-experiment h1').first().innerText(), TITLE);
      await assertInert(frame, 'the results panel', [TITLE, LABEL, PROMPT]);
      await screenshot('e2e-62-hostile-experiment');
      // The notification that the run finished names it too.
      await assertInert(page, 'the workbench (tab title, notification)', []);

      // The Runs view lists the run by its hostile title, as text.
      await page.locator('.activitybar .action-item a[aria-label^="MechLens"], .activitybar .action-item[aria-label^="MechLens"]').first().click();
      const runs = page.locator('.sidebar .pane', { has: page.locator('.pane-header', { hasText: /^\s*Runs/i }) });
      const header = runs.locator('.pane-header');
      if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
      await runs.locator('.monaco-list-row', { hasText: TITLE.slice(0, 20) }).first().waitFor({ state: 'visible', timeout: 60_000 });
      await assertInert(page, 'the Runs view', [TITLE.slice(0, 20)]);
      await screenshot('e2e-63-hostile-runs');
    });
  });
});
