/// <reference types="mocha" />
/**
 * SAE features on Inspect: with the setting mechlens.sae naming an SAE in SAELens's format (a
 * seeded random one for the built-in model, written here), Inspect shows each token's most active
 * features with the same numbers as the engine computes in-process (loadSae +
 * featureActivations), and a click on a feature colours the prompt by it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../../src/engine/model/safetensors';
import { loadSae } from '../../src/engine/sae/load';
import { featureActivations, topFeaturesPerToken } from '../../src/engine/analysis/sae';
import { SaeService } from '../../src/engine/sae/service';
import { f32 } from '../../src/engine/tensor/tensor';
import { referenceEngine } from './engineRef';
import { findWebview, screenshot, session } from './session';
import { closeAllEditors, openFromExplorer, runCommand, showExplorer } from './workbench';

const SAE_DIR = 'it-sae-resid-pre-1';
const PROMPT = 'Call me Ishmael. Some years ago';
const D_IN = 128; // builtin:default's d_model
const D_SAE = 256;
const CORPUS = 'sae-corpus.txt';
// Text the built-in character model can read (its 80 characters), a few thousand tokens of it.
const CORPUS_TEXT = Array.from({ length: 40 }, (_, i) => `Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse (${i}), I thought I would sail about a little and see the watery part of the world.`).join('\n');

/** A seeded random standard SAE on blocks.1.hook_resid_pre of the built-in model. */
function writeSae(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  let s = 12345;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const t = (dims: number[], scale: number) => f32(dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand() * scale));
  writeSafetensors(path.join(dir, 'sae_weights.safetensors'), { W_enc: t([D_IN, D_SAE], 0.2), b_enc: t([D_SAE], 0.05), W_dec: t([D_SAE, D_IN], 0.1), b_dec: t([D_IN], 0.01) });
  fs.writeFileSync(
    path.join(dir, 'cfg.json'),
    JSON.stringify({ architecture: 'standard', d_in: D_IN, d_sae: D_SAE, dtype: 'float32', device: 'cpu', apply_b_dec_to_input: true, normalize_activations: 'none', metadata: { hook_name: 'blocks.1.hook_resid_pre', model_name: 'builtin:default', prepend_bos: true } }, null, 1),
  );
}

describe('e2e: SAE features on Inspect', function () {
  this.timeout(240_000);
  let settingsFile = '';

  before(() => {
    const { workspace } = session();
    writeSae(path.join(workspace, SAE_DIR));
    fs.writeFileSync(path.join(workspace, 'sae.prompts'), `${PROMPT}\n${PROMPT} -> "," | "."\n`);
    fs.mkdirSync(path.join(workspace, '.vscode'), { recursive: true });
    settingsFile = path.join(workspace, '.vscode', 'settings.json');
    fs.writeFileSync(path.join(workspace, CORPUS), CORPUS_TEXT);
    fs.writeFileSync(settingsFile, JSON.stringify({ 'mechlens.sae': SAE_DIR, 'mechlens.saeCorpus': CORPUS }));
  });

  after(() => {
    const { workspace } = session();
    fs.rmSync(settingsFile, { force: true });
    fs.rmSync(path.join(workspace, SAE_DIR), { recursive: true, force: true });
    fs.rmSync(path.join(workspace, 'sae.prompts'), { force: true });
    fs.rmSync(path.join(workspace, CORPUS), { force: true });
  });

  it("Inspect shows each token's top features with the engine's activations; a click colours the prompt by one", async () => {
    const { page, workspace } = session();
    await closeAllEditors(page);
    await showExplorer(page);
    await openFromExplorer(page, 'sae.prompts');
    const line = page.locator('.monaco-editor .view-lines .view-line', { hasText: PROMPT }).first();
    await line.waitFor({ state: 'visible' });
    await line.click();
    await runCommand(page, 'MechLens: Inspect Prompt');
    const frame = await findWebview(page, '.ml-sae-table', 120_000);

    // The engine's own numbers, in this process.
    const eng = await referenceEngine();
    const sae = await loadSae(path.join(workspace, SAE_DIR), { allowDownload: false });
    const { tokens } = eng.tokenize([PROMPT], true);
    const f = await featureActivations(eng.model, tokens, sae);
    const top = topFeaturesPerToken(f.acts, 8)[0]!;

    const rows = frame.locator('.ml-sae-table tbody tr');
    assert.equal(await rows.count(), tokens[0]!.length, 'a row per token');
    for (const pos of [1, tokens[0]!.length - 1]) {
      const chips = rows.nth(pos).locator('.ml-feature');
      const shown: [number, number][] = [];
      for (let i = 0; i < (await chips.count()); i++) {
        const title = (await chips.nth(i).getAttribute('title')) ?? '';
        shown.push([Number(await chips.nth(i).getAttribute('data-feature')), Number(/: (\S+) at position/.exec(title)?.[1])]);
      }
      const want = top[pos]!.map((x) => [x.feature, x.act]);
      assert.equal(shown.length, want.length, `position ${pos}: ${shown.length} features shown, engine ${want.length}`);
      shown.forEach(([feat, act], i) => {
        assert.equal(feat, want[i]![0], `position ${pos}, rank ${i}: feature`);
        assert.ok(Math.abs(act! - want[i]![1]!) < 1e-4, `position ${pos}, feature ${feat}: webview ${act} vs engine ${want[i]![1]}`);
      });
    }
    await screenshot('e2e-80-sae-features');

    // Click a feature of the last token: the strip is coloured by it.
    const last = top[tokens[0]!.length - 1]!;
    assert.ok(last.length > 0, 'the last token has an active feature');
    const pick = last[last.length - 1]!.feature;
    await rows.nth(tokens[0]!.length - 1).locator(`.ml-feature[data-feature="${pick}"]`).click();
    await frame.locator(`.ml-sae-strip[data-feature="${pick}"]`).waitFor({ state: 'attached', timeout: 5_000 });
    assert.match(await frame.locator('.ml-sae-caption').innerText(), new RegExp(`feature #${pick}`));
    await screenshot('e2e-81-sae-feature-colour');

    // Its dashboard over the corpus of the setting mechlens.saeCorpus, equal to the engine's.
    await frame.locator('[data-action="sae.dashboard"]').click();
    await page.locator('.tabs-container .tab', { hasText: `MechLens: Feature #${pick}` }).first().waitFor({ state: 'visible', timeout: 60_000 });
    const dash = await findWebview(page, `.ml-feature-dashboard[data-feature="${pick}"] .ml-feature-context`, 180_000);
    const service = new SaeService(() => ({ model: eng.model, tokenizer: eng.tokenizer }));
    const info = await service.load(path.join(workspace, SAE_DIR), { allowDownload: false });
    const ref = await service.dashboard({ saeId: info.id, feature: pick, corpus: { file: path.join(workspace, CORPUS) }, prependBos: true });
    const items = dash.locator('.ml-feature-context');
    const acts: number[] = [];
    for (let i = 0; i < (await items.count()); i++) acts.push(Number(await items.nth(i).getAttribute('data-act')));
    assert.equal(acts.length, ref.contexts.length, 'as many top contexts as the engine finds');
    acts.forEach((a, i) => assert.ok(Math.abs(a - ref.contexts[i]!.act) < 1e-4, `context ${i}: webview ${a} vs engine ${ref.contexts[i]!.act}`));
    const hit = await dash.locator('.ml-feature-context').first().locator('.ml-feature-hit').innerText();
    assert.equal(hit.replace(/\u00b7/g, ' ').replace(/\u23ce/g, '\n'), ref.contexts[0]!.strTokens[ref.contexts[0]!.highlight], 'the activating token is the one marked');
    assert.match(await dash.locator('.ml-stat', { hasText: 'corpus tokens' }).innerText(), new RegExp(ref.tokens.toLocaleString('en-US')));
    await screenshot('e2e-82-sae-feature-dashboard');

    // Feature DLA in the Logit lens & DLA panel, for the prompt with an answer and a wrong answer.
    await page.locator('.tabs-container .tab', { hasText: 'sae.prompts' }).first().click();
    await page.locator('.monaco-editor .view-lines .view-line', { hasText: '-> ","' }).first().click();
    await runCommand(page, 'MechLens: Show Logit Lens and Direct Logit Attribution');
    const dla = await findWebview(page, '.ml-feature-dla', 120_000);
    const refDla = await service.featureDla({ saeId: info.id, texts: [PROMPT], answers: [[',', '.']], prependBos: true });
    const total = Number(await dla.locator('.ml-feature-dla').getAttribute('data-total'));
    assert.ok(Math.abs(total - refDla.total) < 1e-4, `the features' total ${total} vs engine ${refDla.total}`);
    const firstBar = await dla.locator('.ml-feature-dla').innerText();
    assert.ok(firstBar.includes(`#${refDla.features[0]}`), `the largest feature #${refDla.features[0]} is listed`);
    await dla.locator('.ml-feature-dla').scrollIntoViewIfNeeded();
    await screenshot('e2e-83-sae-feature-dla');
  });
});
