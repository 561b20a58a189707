/// <reference types="mocha" />
/**
 * SAE experiments from the Run lens: an experiment file with sae_ablate, sae_steer (generated text
 * before and after) and sae_attribution (estimates beside exact patching) on a seeded random SAE of
 * the built-in model runs from its CodeLens, and the panel shows the numbers the engine computes
 * in this process for the same file (parseExperiment + runExperiment).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FrameLocator } from 'playwright-core';
import { writeSafetensors } from '../../src/engine/model/safetensors';
import { loadSae } from '../../src/engine/sae/load';
import { featureActivations, topFeaturesPerToken } from '../../src/engine/analysis/sae';
import { checkWithModel, parseExperiment } from '../../src/engine/experiments/parse';
import { runExperiment, type AnalysisResult } from '../../src/engine/experiments/run';
import { f32 } from '../../src/engine/tensor/tensor';
import { referenceEngine } from './engineRef';
import { findWebview, screenshot, session } from './session';
import { SEL, closeAllEditors, openFromExplorer, waitForCodeLenses, waitForLensTexts } from './workbench';

const SAE_DIR = 'it-sae-edits';
const FILE = 'sae-edits.experiment.json';
const TITLE = 'SAE edits on the built-in model';
const D_IN = 128; // builtin:default's d_model
const D_SAE = 256;

/** A seeded random standard SAE on blocks.1.hook_resid_pre of the built-in model. */
function writeSae(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  let s = 777;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const t = (dims: number[], scale: number) => f32(dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand() * scale));
  writeSafetensors(path.join(dir, 'sae_weights.safetensors'), { W_enc: t([D_IN, D_SAE], 0.2), b_enc: t([D_SAE], 0.05), W_dec: t([D_SAE, D_IN], 0.3), b_dec: t([D_IN], 0.01) });
  fs.writeFileSync(
    path.join(dir, 'cfg.json'),
    JSON.stringify({ architecture: 'standard', d_in: D_IN, d_sae: D_SAE, dtype: 'float32', device: 'cpu', apply_b_dec_to_input: true, normalize_activations: 'none', metadata: { hook_name: 'blocks.1.hook_resid_pre', model_name: 'builtin:default', prepend_bos: true } }, null, 1),
  );
}

/** The `title` attributes (full-precision values) of a section's stats, by label. */
async function stats(sec: ReturnType<FrameLocator['locator']>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const items = sec.locator('.ml-stat');
  for (let i = 0; i < (await items.count()); i++) {
    // textContent: innerText follows the label's CSS text-transform.
    const label = ((await items.nth(i).locator('.ml-stat-label').textContent()) ?? '').trim();
    out.set(label, (await items.nth(i).getAttribute('title')) ?? (await items.nth(i).locator('.ml-stat-value').innerText()));
  }
  return out;
}

describe('e2e: SAE experiments from the Run lens', function () {
  this.timeout(300_000);
  const prompts = [
    { prompt: 'said old Captain Ah', corrupted: 'said old Captain Pe', answer: 'a', wrong: 'l' },
    { prompt: 'the great white wha', corrupted: 'the great white shi', answer: 'l', wrong: 'p' },
  ];
  let want: AnalysisResult[] = [];
  let frame: FrameLocator;

  before(async () => {
    const { workspace } = session();
    writeSae(path.join(workspace, SAE_DIR));
    // Features that fire on the prompts: the most active ones at the last position.
    const eng = await referenceEngine();
    const sae = await loadSae(path.join(workspace, SAE_DIR), { allowDownload: false });
    const { tokens } = eng.tokenize(prompts.map((p) => p.prompt), true);
    const top = topFeaturesPerToken((await featureActivations(eng.model, tokens, sae)).acts, 3)[0]!;
    const last = top[tokens[0]!.length - 1]!.map((t) => t.feature);
    assert.ok(last.length >= 2, 'the SAE has active features at the last position');
    const file = path.join(workspace, FILE);
    fs.writeFileSync(file, JSON.stringify({
      title: TITLE,
      model: 'builtin:default',
      prompts,
      analyses: [
        { kind: 'sae_ablate', sae: `./${SAE_DIR}`, features: last.slice(0, 2) },
        { kind: 'sae_steer', sae: `./${SAE_DIR}`, feature: last[0], alpha: 12, generate: 12 },
        { kind: 'sae_attribution', sae: `./${SAE_DIR}`, top: 5 },
      ],
    }, null, 2));
    const parsed = parseExperiment(fs.readFileSync(file, 'utf8'), file);
    assert.ok(parsed.experiment, parsed.diagnostics.map((d) => d.message).join('; '));
    const checked = checkWithModel(parsed.experiment, eng.model.cfg, eng.tokenizer);
    assert.deepEqual(checked.diagnostics, []);
    want = (await runExperiment(parsed.experiment, eng.model, eng.tokenizer, checked.tokens)).results;
  });

  after(() => {
    const { workspace } = session();
    fs.rmSync(path.join(workspace, SAE_DIR), { recursive: true, force: true });
    fs.rmSync(path.join(workspace, FILE), { force: true });
  });

  it('runs from the Run lens and shows the three SAE sections', async () => {
    const { page } = session();
    await closeAllEditors(page);
    await openFromExplorer(page, FILE);
    await waitForCodeLenses(page, 4);
    await waitForLensTexts(page, (t) => t.slice(0, 3).join('|') === 'Run|Run one analysis|Open last result');
    await page.locator(SEL.codeLens, { hasText: /^Run$/ }).first().click();
    await page.locator('.tabs-container .tab', { hasText: `MechLens: ${TITLE.slice(0, 30)}` }).first().waitFor({ state: 'visible', timeout: 60_000 });
    frame = await findWebview(page, '.ml-exp-section[data-kind="sae_attribution"] .ml-table', 180_000);
    for (const kind of ['sae_ablate', 'sae_steer', 'sae_attribution']) assert.equal(await frame.locator(`.ml-exp-section[data-kind="${kind}"]`).count(), 1, kind);
  });

  it("sae_ablate: loss and logit differences before and after are the engine's", async () => {
    assert.ok(frame, 'no results panel (previous test failed)');
    const sec = frame.locator('.ml-exp-section[data-kind="sae_ablate"]');
    await sec.scrollIntoViewIfNeeded();
    const got = await stats(sec);
    const w = want.find((r) => r.kind === 'sae_ablate')!;
    for (const [label, key] of [['loss before', 'lossBefore'], ['loss after', 'lossAfter']] as const) {
      assert.ok(Math.abs(Number(got.get(label)) - (w.data[key] as number)) < 1e-4, `${label}: panel ${got.get(label)} vs engine ${String(w.data[key])}`);
    }
    const metricLabel = [...got.keys()].find((k) => k.endsWith(' after') && k !== 'loss after')!;
    assert.ok(Math.abs(Number(got.get(metricLabel)) - (w.data['metricAfter'] as number)) < 1e-4, `${metricLabel}: panel ${got.get(metricLabel)} vs engine ${String(w.data['metricAfter'])}`);
    await screenshot('e2e-85-sae-ablate');
  });

  it("sae_steer: the generated text before and after is the engine's", async () => {
    assert.ok(frame, 'no results panel (previous test failed)');
    const sec = frame.locator('.ml-exp-section[data-kind="sae_steer"]');
    await sec.scrollIntoViewIfNeeded();
    const w = want.find((r) => r.kind === 'sae_steer')!;
    const rows = sec.locator('.ml-exp-table tbody tr');
    const text = async (i: number) => (await rows.nth(i).locator('td').nth(1).innerText()).trim();
    assert.equal(await text(0), JSON.stringify(w.data['continuationBefore']));
    assert.equal(await text(1), JSON.stringify(w.data['continuationAfter']));
    assert.notEqual(w.data['continuationBefore'], w.data['continuationAfter'], 'steering changed the continuation');
    await sec.locator('.ml-exp-table').scrollIntoViewIfNeeded();
    await screenshot('e2e-86-sae-steer');
  });

  it("sae_attribution: estimates and exact patching of the top cells are the engine's", async () => {
    assert.ok(frame, 'no results panel (previous test failed)');
    const sec = frame.locator('.ml-exp-section[data-kind="sae_attribution"]');
    await sec.scrollIntoViewIfNeeded();
    const w = want.find((r) => r.kind === 'sae_attribution')!;
    const cells = w.data['top'] as { feature: number; pos: number; estimateScaled: number; exactScaled: number }[];
    const rows = sec.locator('.ml-exp-table tbody tr');
    assert.equal(await rows.count(), cells.length);
    for (let i = 0; i < cells.length; i++) {
      const td = rows.nth(i).locator('td');
      assert.match(await td.nth(0).innerText(), new RegExp(`^F${cells[i]!.feature} at ${cells[i]!.pos} "`));
      const est = Number(await td.nth(3).getAttribute('title'));
      const exact = Number(await td.nth(4).getAttribute('title'));
      assert.ok(Math.abs(est - cells[i]!.estimateScaled) < 1e-4, `row ${i}: estimate ${est} vs engine ${cells[i]!.estimateScaled}`);
      assert.ok(Math.abs(exact - cells[i]!.exactScaled) < 1e-4, `row ${i}: exact ${exact} vs engine ${cells[i]!.exactScaled}`);
    }
    // The correlation's title explains it: its shown value has 4 significant digits.
    const corr = sec.locator('.ml-stat', { hasText: /correlation/i }).locator('.ml-stat-value');
    const shown = Number((await corr.innerText()).replace('\u2212', '-'));
    assert.ok(Math.abs(shown - (w.data['correlation'] as number)) < 6e-4, `correlation: panel ${shown} vs engine ${String(w.data['correlation'])}`);
    await sec.locator('canvas').first().waitFor({ state: 'visible', timeout: 30_000 });
    await screenshot('e2e-87-sae-attribution');
    await sec.locator('.ml-exp-table').scrollIntoViewIfNeeded();
    await screenshot('e2e-88-sae-attribution-table');
  });
});
