/// <reference types="mocha" />
/**
 * A user opens samples/toy-patching.experiment.json from the Explorer, clicks the "Run" lens
 * above it and reads the results panel: the activation-patching heatmap's title, and values on
 * hover, which must be the engine's own resid_pre patching sweep for the same prompts, computed
 * here in this process (LoadedEngine.load('builtin:default') + analyzeModel).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FrameLocator } from 'playwright-core';
import { analyzeModel } from '../../src/engine/engine';
import { checkWithModel, parseExperiment } from '../../src/engine/experiments/parse';
import { referenceEngine, visibleToken } from './engineRef';
import { findWebview, screenshot, session } from './session';
import { SEL, closeAllEditors, openFromExplorer, waitForCodeLenses, waitForLensTexts } from './workbench';

const SAMPLE = 'toy-patching.experiment.json';

interface Reference {
  /** resid_pre patching, [layer][pos], normalised logit difference. */
  residPre: number[][];
  strTokens: string[];
  title: string;
}

async function reference(file: string): Promise<Reference> {
  const eng = await referenceEngine();
  const parsed = parseExperiment(fs.readFileSync(file, 'utf8'), file);
  assert.ok(parsed.experiment, parsed.diagnostics.map((d) => d.message).join('; '));
  const x = parsed.experiment;
  const checked = checkWithModel(x, eng.model.cfg, eng.tokenizer);
  assert.deepEqual(checked.diagnostics, []);
  const g = checked.tokens[0]!;
  const r = await analyzeModel(eng.model, g.clean, g.corrupted!, g.answers!);
  return { residPre: r.resid_pre_patching, strTokens: g.strTokens, title: x.title };
}

/** The 4-significant-digit rounding of the hover (formatSig(v, 4)), as a tolerance. */
function tolerance(v: number): number {
  return Math.max(Math.abs(v) * 6e-4, 5e-5);
}

describe('e2e: an experiment from its Run lens', function () {
  this.timeout(180_000);
  let ref: Reference;
  let frame: FrameLocator;

  before(async () => {
    ref = await reference(path.join(session().workspace, SAMPLE));
  });

  it('opens the experiment file and shows Run · Run one analysis · Open last result', async () => {
    const { page } = session();
    await closeAllEditors(page);
    await openFromExplorer(page, SAMPLE);
    await waitForCodeLenses(page, 4);
    const texts = await waitForLensTexts(page, (t) => t.slice(0, 3).join('|') === 'Run|Run one analysis|Open last result' && t.includes('Run this analysis'));
    assert.deepEqual(texts.slice(0, 3), ['Run', 'Run one analysis', 'Open last result'], `lens row: ${JSON.stringify(texts)}`);
    assert.ok(texts.includes('Run this analysis'), `no per-analysis lens: ${JSON.stringify(texts)}`);
  });

  it('clicking "Run" runs it and opens the results panel', async () => {
    const { page } = session();
    await page.locator(SEL.codeLens, { hasText: /^Run$/ }).first().click();
    await page.locator('.tabs-container .tab', { hasText: `MechLens: ${ref.title.slice(0, 30)}` }).first().waitFor({ state: 'visible', timeout: 60_000 });
    frame = await findWebview(page, '.ml-experiment', 120_000);
    await frame.locator('.ml-exp-section[data-kind="patch"] canvas').first().waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal(await frame.locator('.ml-experiment h1').first().innerText(), ref.title);
    await screenshot('e2e-40-experiment');
  });

  it("the patching heatmap's title, and hovered values equal to the engine's sweep", async () => {
    assert.ok(frame, 'no results panel (previous test failed)');
    const { page } = session();
    const sec = frame.locator('.ml-exp-section[data-kind="patch"]');
    await sec.scrollIntoViewIfNeeded();
    const title = await sec.locator('[data-role="exact"] .ml-heatmap-title').innerText();
    assert.equal(title, 'Activation patching: blocks.L.hook_resid_pre');
    assert.match(await sec.locator('[data-role="estimate"] .ml-heatmap-title').innerText(), /attribution patching \(r = -?\d\.\d{3} with the exact sweep\)/);

    const canvas = sec.locator('[data-role="exact"] canvas').first();
    const box = await canvas.boundingBox();
    assert.ok(box, 'the patching heatmap has no box');
    const tip = sec.locator('[data-role="exact"] .ml-tooltip');
    /** Hovers at a fraction of the canvas; the cell's layer, position and value, or null off the plot. */
    const hoverAt = async (fx: number, fy: number) => {
      await canvas.hover({ position: { x: box.width * fx, y: box.height * fy } });
      if (!(await tip.isVisible())) return null;
      const keys = await tip.locator('.ml-tooltip-key').allInnerTexts();
      const vals = await tip.locator('.ml-tooltip-val').allInnerTexts();
      const get = (k: string) => vals[keys.indexOf(k)] ?? '';
      return { layer: Number(get('layer')), posLabel: get('position'), value: Number(get('normalised logit diff').replace('−', '-')) };
    };
    // Find the rows (layers) going down the middle of the plot, then read cells across each.
    const rows = new Map<number, number>();
    for (let fy = 0.02; fy < 0.8; fy += 0.03) {
      const h = await hoverAt(0.5, fy);
      if (h && !rows.has(h.layer)) rows.set(h.layer, fy);
    }
    assert.equal(rows.size, ref.residPre.length, `hovering down the map found layers ${[...rows.keys()].join(', ')}`);
    const hits: string[] = [];
    let strongest = 0;
    for (const fy of rows.values()) {
      for (let fx = 0.05; fx < 0.97; fx += 0.06) {
        const h = await hoverAt(fx, fy);
        if (!h) continue;
        const pos = Number(/_(\d+)$/.exec(h.posLabel)?.[1]);
        assert.ok(Number.isInteger(h.layer) && Number.isInteger(pos), `hover labels layer=${h.layer} position=${h.posLabel}`);
        assert.equal(h.posLabel, `${visibleToken(ref.strTokens[pos]!)}_${pos}`, 'positions are labelled tok_i with the engine\'s tokens');
        const want = ref.residPre[h.layer]![pos]!;
        assert.ok(Math.abs(h.value - want) <= tolerance(want), `layer ${h.layer}, ${h.posLabel}: panel ${h.value} vs engine ${want}`);
        hits.push(`L${h.layer} ${h.posLabel}=${h.value}`);
        strongest = Math.max(strongest, Math.abs(want));
        if (Math.abs(want) > 0.3 && hits.length > 1) await screenshot('e2e-41-experiment-hover');
      }
    }
    console.log(`      hovered ${hits.length} cells: ${hits.slice(-6).join(', ')}`);
    assert.ok(hits.length >= 10, `hovering showed a value only ${hits.length} times: ${hits.join(', ')}`);
    assert.ok(strongest > 0.3, 'the hovered cells include the positions that carry the answer');
    await page.mouse.move(0, 0);
  });

  it('draws the other analyses with the shared components (bars, logit lens, head map, attention)', async () => {
    assert.ok(frame, 'no results panel (previous test failed)');
    for (const [kind, sel, shot] of [['layer_dla', '.ml-barchart .ml-bar-row', 'e2e-42-experiment-dla'], ['logit_lens', '.ml-exp-line svg', 'e2e-43-experiment-logit-lens'], ['attention', 'canvas', 'e2e-44-experiment-attention']] as const) {
      const sec = frame.locator(`.ml-exp-section[data-kind="${kind}"]`);
      await sec.scrollIntoViewIfNeeded();
      await sec.locator(sel).first().waitFor({ state: 'visible', timeout: 30_000 });
      await screenshot(shot);
    }
    const labels = await frame.locator('.ml-exp-section[data-kind="layer_dla"] .ml-bar-label').allInnerTexts();
    assert.equal(labels[0], 'embed');
  });
});
