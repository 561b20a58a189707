/**
 * The SAE experiment kinds end to end through `mechlens run` / `mechlens report`: sae_features,
 * sae_ablate and sae_steer on the gpt2 fixture with a fixture SAE, their numbers tied to what
 * SAELens / TransformerLens computed (test/fixtures/saes), and located errors for bad SAEs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadRun } from '../../src/engine/experiments/store.js';
import { parseExperiment } from '../../src/engine/experiments/parse.js';
import { logitDiffs } from '../../src/engine/analysis/basic.js';
import { readSafetensors } from '../../src/engine/model/safetensors.js';
import { FIXTURES_ROOT } from '../helpers/oracle.js';
import { runCliResult } from '../helpers/cli.js';

const MODEL = path.join(FIXTURES_ROOT, 'gpt2-tied-gelu-new');
const SAES = path.join(FIXTURES_ROOT, 'saes', 'gpt2-tied-gelu-new');
const spec = JSON.parse(fs.readFileSync(path.join(MODEL, 'spec.json'), 'utf8')) as { prompts: string[]; answer_strs: [string, string][]; tokens: number[][] };
const exp = JSON.parse(fs.readFileSync(path.join(SAES, 'expected.json'), 'utf8')) as { edits: { sae: string; features: number[]; steer: { feature: number; alpha: number; positions: number[] } } };
const want = readSafetensors(path.join(SAES, 'expected.safetensors'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sae-exp-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
fs.cpSync(path.join(SAES, exp.edits.sae), path.join(tmp, 'saes', 'sae0'), { recursive: true });
fs.cpSync(path.join(FIXTURES_ROOT, 'saes', 'rms-gqa-gated', 'jumprelu-mlp-post-0'), path.join(tmp, 'saes', 'other-model'), { recursive: true });

const base = {
  model: { name: MODEL, processing: 'default' },
  prompts: spec.prompts.map((p, i) => ({ prompt: p, answer: spec.answer_strs[i]![0], wrong: spec.answer_strs[i]![1] })),
};

const cli = runCliResult;

test('sae_features, sae_ablate and sae_steer run from an experiment file, with SAELens\'s numbers, and report', async () => {
  const st = exp.edits.steer;
  const file = path.join(tmp, 'sae.experiment.json');
  fs.writeFileSync(file, JSON.stringify({
    ...base,
    analyses: [
      { kind: 'sae_features', sae: './saes/sae0', top: 3 },
      { kind: 'sae_ablate', sae: './saes/sae0', features: exp.edits.features },
      { kind: 'sae_ablate', sae: './saes/sae0', features: exp.edits.features, ablation: 'mean' },
      { kind: 'sae_steer', sae: './saes/sae0', feature: st.feature, alpha: st.alpha, positions: st.positions, generate: 3 },
    ],
  }));
  const out = path.join(tmp, 'run');
  const r = await cli(['run', file, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const { results } = loadRun(out);
  const [feat, zero, mean, steer] = results!.results;
  assert.equal(feat!.kind, 'sae_features');
  assert.ok((feat!.data['l0'] as number) > 0 && (feat!.data['explainedVariance'] as number) <= 1);
  assert.ok(feat!.blocks.some((b) => b.type === 'table' && b.rows.length === spec.tokens.length * spec.tokens[0]!.length));
  // The ablations' logit differences are those of SAELens's edited logits.
  for (const [res, kind] of [[zero!, 'zero'], [mean!, 'mean']] as const) {
    const got = (res.data['logitDiffs'] as { after: number[] }).after;
    const ids = (res.data['logitDiffs'] as { before: number[] }).before.map((_, i) => i);
    const wantLd = logitDiffs(want.get(`edits/${kind}/logits`)!, ids.map((i) => tokenPair(i)));
    got.forEach((v, i) => assert.ok(Math.abs(v - wantLd[i]!) < 1e-4, `${kind} ablation, prompt ${i}: logit diff ${v} vs SAELens ${wantLd[i]}`));
  }
  // Steering: the top prediction's logit of prompt 0 is TransformerLens's.
  const steered = want.get('edits/steer/logits')!;
  const [, P, V] = steered.dims as [number, number, number];
  const row = steered.data.subarray((P - 1) * V, P * V);
  const topAfter = (steer!.data['topAfter'] as { token: number; logit: number }[])[0]!;
  assert.equal(topAfter.token, row.indexOf(Math.max(...row)));
  assert.ok(Math.abs(topAfter.logit - Math.max(...row)) < 1e-4);
  assert.equal((steer!.data['tokensAfter'] as number[]).length, 3);
  const html = path.join(tmp, 'report.html');
  const rep = await cli(['report', out, '--out', html]);
  assert.equal(rep.code, 0, rep.stderr);
  assert.match(fs.readFileSync(html, 'utf8'), /Steering with an SAE feature/);
});

/** [correct, wrong] token ids of prompt i, as the experiment resolves them. */
function tokenPair(i: number): [number, number] {
  const ans = JSON.parse(fs.readFileSync(path.join(MODEL, 'spec.json'), 'utf8')) as { answers: [number, number][] };
  return ans.answers[i]!;
}

test('bad SAEs are located errors before anything runs', async () => {
  const parse = (analyses: unknown[]) => parseExperiment(JSON.stringify({ ...base, analyses }), path.join(tmp, 'x.experiment.json'));
  const d1 = parse([{ kind: 'sae_ablate', sae: './saes/sae0', features: [1, 999] }]).diagnostics;
  assert.ok(d1.some((d) => /feature 999 does not exist: the SAE has features 0\.\.47/.test(d.message)), JSON.stringify(d1));
  const d2 = parse([{ kind: 'sae_features', sae: '../outside' }]).diagnostics;
  assert.ok(d2.some((d) => /leaves the experiment's folder/.test(d.message)), JSON.stringify(d2));
  const d3 = parse([{ kind: 'sae_features', sae: './saes' }]).diagnostics;
  assert.ok(d3.some((d) => /one SAE per sub-folder; name one of .*sae0/.test(d.message)), JSON.stringify(d3));
  // Fits-the-model checks run with the model (mechlens check / run).
  const file = path.join(tmp, 'wrong.experiment.json');
  fs.writeFileSync(file, JSON.stringify({ ...base, analyses: [{ kind: 'sae_features', sae: './saes/other-model' }] }));
  const r = await cli(['run', file, '--out', path.join(tmp, 'run-wrong')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /d_in = 64, but blocks\.0\.mlp\.hook_post of this model has width 128/);
});

test('"saes" splices SAEs into every analysis: logit differences are SAELens\'s, SAE hooks can be ablated, attribution patching says why it is absent', async () => {
  const file = path.join(tmp, 'spliced.experiment.json');
  const corrupted = JSON.parse(fs.readFileSync(path.join(MODEL, 'spec.json'), 'utf8')) as { corrupted_prompts: string[] };
  fs.writeFileSync(file, JSON.stringify({
    ...base,
    prompts: base.prompts.map((p, i) => ({ ...p, corrupted: corrupted.corrupted_prompts[i]! })),
    saes: [{ sae: './saes/sae0' }],
    analyses: [
      { kind: 'logit_diff' },
      { kind: 'ablation', ablation: 'zero', hooks: ['blocks.0.hook_resid_post.hook_sae_acts_post', 'blocks.1.hook_resid_pre'] },
      { kind: 'patch', hook: 'resid_pre', attribution: true },
    ],
  }));
  const out = path.join(tmp, 'run-spliced');
  const r = await cli(['run', file, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const { results } = loadRun(out);
  const [ld, abl, patch] = results!.results;
  const got = (ld!.data['clean'] as { perPrompt: number[] }).perPrompt;
  const wantLd = logitDiffs(want.get(`${exp.edits.sae}/without_error/logits`)!, got.map((_, i) => tokenPair(i)));
  got.forEach((v, i) => assert.ok(Math.abs(v - wantLd[i]!) < 1e-4, `prompt ${i}: logit diff ${v} with the SAE spliced vs SAELens ${wantLd[i]}`));
  const losses = abl!.data['losses'] as number[];
  assert.ok(losses.every(Number.isFinite) && Math.abs(losses[0]! - (abl!.data['baseline'] as number)) > 1e-6, 'zeroing every feature changes the loss');
  assert.match(String((patch!.data['attribution'] as { skipped: string }).skipped), /without SAEs/);
});
