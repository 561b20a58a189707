/// <reference types="mocha" />
/**
 * A user opens samples/basics.prompts from the Explorer, waits for the CodeLens row, clicks
 * "Attention", and reads the panel. What the webview shows (head grid, token labels, values on
 * hover) is compared with the engine's numbers for the same prompt, computed in this process
 * with LoadedEngine.load('builtin:default') + model.runWithCache.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FrameLocator } from 'playwright-core';
import { parsePromptsFile } from '../../src/engine/prompts/promptsFile';
import { referenceAttention, visibleToken, type ReferenceAttention } from './engineRef';
import { findWebview, screenshot, session } from './session';
import { SEL, firstSample, openFromExplorer, waitForCodeLenses, waitForLensTexts } from './workbench';

/** Parses '12.3%' / '0.45%' / '3.2e-5%' as shown by the webview into a probability. */
function parsePercent(s: string): number {
  const m = /(-?[\d.]+(?:e[+-]?\d+)?)\s*%/i.exec(s.replace('−', '-'));
  assert.ok(m, `not a percentage: ${JSON.stringify(s)}`);
  return Number(m[1]) / 100;
}

/** The rounding of the webview's percentages (formatPercent): 1 decimal ≥10%, 2 ≥0.1%, else 2 significant digits. */
function percentTolerance(p: number): number {
  const v = p * 100;
  return (v >= 10 ? 0.05 : v >= 0.1 ? 0.005 : Math.max(v * 0.05, 1e-12)) / 100 + 1e-9;
}

describe('e2e: Attention from the CodeLens', function () {
  this.timeout(120_000);
  let sample: string;
  let prompt: string;
  let ref: ReferenceAttention;
  let frame: FrameLocator;

  before(async () => {
    const { workspace } = session();
    sample = firstSample(workspace);
    const entry = parsePromptsFile(fs.readFileSync(path.join(workspace, sample), 'utf8')).prompts[0];
    assert.ok(entry, `${sample} holds no prompt`);
    prompt = entry.prompt.text;
    ref = await referenceAttention(prompt);
  });

  it(`opens the sample from the Explorer and shows the CodeLens row`, async () => {
    const { page, workspace } = session();
    await openFromExplorer(page, sample);
    const nPrompts = parsePromptsFile(fs.readFileSync(path.join(workspace, sample), 'utf8')).prompts.length;
    await waitForCodeLenses(page, 3);
    // Only the visible lines render lenses; the first prompt's row must be complete.
    const texts = await waitForLensTexts(page, (t) => t.length >= 3 && t[0] === 'Inspect');
    assert.deepEqual(texts.slice(0, 3).map((t) => t.replace(/\s+/g, ' ')), ['Inspect', 'Attention', texts[2]], `lens row: ${JSON.stringify(texts.slice(0, 3))}`);
    assert.match(texts[2]!, /^Logit lens$/);
    assert.ok(texts.length <= nPrompts * 3, `${texts.length} lenses for ${nPrompts} prompts`);
    await screenshot('e2e-02-codelens');
  });

  it('clicking "Attention" opens the panel for that prompt', async () => {
    const { page } = session();
    await page.locator(SEL.codeLens, { hasText: /^Attention$/ }).first().click();
    const expectedTitle = `MechLens: Attention — ${prompt.slice(0, 30)}`;
    await page.locator('.tabs-container .tab', { hasText: expectedTitle }).first().waitFor({ state: 'visible', timeout: 60_000 });
    frame = await findWebview(page, '.ml-attention', 90_000);
    await frame.locator('.ml-attn-grid .ml-thumb').first().waitFor({ state: 'visible' });
    await screenshot('e2e-03-attention');
  });

  it('shows n_layers × n_heads heads, as the engine has', async () => {
    assert.ok(frame, 'no attention webview (previous test failed)');
    const thumbs = frame.locator('.ml-attn-grid button.ml-thumb');
    assert.equal(await thumbs.count(), ref.nLayers * ref.nHeads, 'thumbnails in the head grid');
    const cols = await frame.locator('.ml-attn-grid .ml-attn-collabel').allInnerTexts();
    assert.deepEqual(cols, Array.from({ length: ref.nHeads }, (_, h) => `H${h}`), 'head column labels');
    const rows = await frame.locator('.ml-attn-grid .ml-attn-rowlabel').allInnerTexts();
    assert.deepEqual(rows, Array.from({ length: ref.nLayers }, (_, l) => `L${l}`), 'layer row labels');
    const summary = await frame.locator('.ml-section', { has: frame.locator('.ml-attn-grid') }).locator('.ml-note').first().innerText();
    assert.match(summary, new RegExp(`${ref.nLayers} layers × ${ref.nHeads} heads`));
  });

  it("labels the tokens exactly as the engine's tokenizer splits the prompt", async () => {
    assert.ok(frame, 'no attention webview (previous test failed)');
    const chips = frame.locator('.ml-attn-tokens .ml-token');
    const shown = await chips.allTextContents();
    assert.deepEqual(shown, ref.strTokens.map(visibleToken), 'token chips vs engine str_tokens');
  });

  it('hovering shows the same attention values as runWithCache', async () => {
    assert.ok(frame, 'no attention webview (previous test failed)');
    const { page } = session();
    // Pick the last head of the last layer (not the default L0H0) the way a user does: click it.
    const L = ref.nLayers - 1;
    const H = ref.nHeads - 1;
    await frame.locator(`.ml-attn-grid button.ml-thumb[data-layer="${L}"][data-head="${H}"]`).click();
    await frame.locator(`[aria-label^="L${L}H${H} attention pattern"]`).first().waitFor({ state: 'attached' });

    // 1. Token view: hover the last token; every chip's hover text gives where it attends.
    const chips = frame.locator('.ml-attn-tokens .ml-token');
    const q = ref.strTokens.length - 1;
    await chips.nth(q).hover();
    let checked = 0;
    for (let k = 0; k <= q; k++) {
      const title = (await chips.nth(k).getAttribute('title')) ?? '';
      const shown = parsePercent(title);
      const want = ref.pattern(L, H, q, k);
      assert.ok(Math.abs(shown - want) <= percentTolerance(want), `L${L}H${H} q=${q} k=${k}: webview "${title}" vs engine ${want}`);
      checked++;
    }
    assert.equal(checked, ref.strTokens.length);

    // 2. The large heatmap: hover cells; the tooltip names query/key positions and the probability.
    const canvas = frame.locator('.ml-attn-detail canvas').first();
    const box = await canvas.boundingBox();
    assert.ok(box, 'the attention heatmap has no box');
    const hits: string[] = [];
    for (const fy of [0.35, 0.55, 0.75, 0.9]) {
      for (const fx of [0.2, 0.4, 0.6]) {
        await canvas.hover({ position: { x: box.width * fx, y: box.height * fy } });
        const tip = frame.locator('.ml-tooltip');
        if (!(await tip.isVisible())) continue;
        const keys = await tip.locator('.ml-tooltip-key').allInnerTexts();
        const vals = await tip.locator('.ml-tooltip-val').allInnerTexts();
        const get = (name: RegExp): string => vals[keys.findIndex((x) => name.test(x))] ?? '';
        const qi = positionOf(get(/query/), ref.strTokens);
        const ki = positionOf(get(/key/), ref.strTokens);
        // Shown as a percentage (formatPercent) or a plain number (formatSig, 4 digits).
        const text = get(/attention probability/);
        const want = ref.pattern(L, H, qi, ki);
        const shown = text.includes('%') ? parsePercent(text) : Number(text.replace('−', '-'));
        const tol = text.includes('%') ? percentTolerance(want) : Math.max(Math.abs(want) * 6e-4, 1e-7);
        assert.ok(Math.abs(shown - want) <= tol, `heatmap hover L${L}H${H} q=${qi} k=${ki}: webview "${text}" vs engine ${want}`);
        hits.push(`q${qi}k${ki}=${text}`);
        if (hits.length === 1) await screenshot('e2e-04-attention-hover');
      }
    }
    assert.ok(hits.length >= 3, `hovering the heatmap showed a tooltip only ${hits.length} times`);
    await page.mouse.move(0, 0);
  });
});

/** Position of a heatmap axis label: 'tok_12' when tokens repeat, else the unique visible token. */
function positionOf(label: string, strTokens: string[]): number {
  const m = /_(\d+)$/.exec(label);
  if (m) return Number(m[1]);
  const i = strTokens.map(visibleToken).indexOf(label);
  assert.ok(i >= 0, `axis label ${JSON.stringify(label)} is not a token of ${JSON.stringify(strTokens)}`);
  return i;
}
