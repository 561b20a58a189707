import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig } from '../../src/engine/model/config.js';
import { causalTrace, embeddingStd, gaussian, traceWindow } from '../../src/engine/analysis/tracing.js';
import { naivePathPatchCell, pathPatch, type PathPatchSpec } from '../../src/engine/analysis/pathPatching.js';
import { logitDiffMetric, normalizedMetric, answerProbMetric } from '../../src/engine/analysis/metrics.js';
import { maxActivatingLines, neuronActivations, neuronDla } from '../../src/engine/analysis/neurons.js';
import { ActivationCache } from '../../src/engine/cache/activationCache.js';
import { tileBatch } from '../../src/engine/analysis/sweep.js';
import { checkWithModel, parseExperiment } from '../../src/engine/experiments/parse.js';
import { LoadedEngine } from '../../src/engine/engine.js';
import { toTokens } from '../../src/engine/model/tokenizer.js';
import type { HookName } from '../../src/engine/hooks/hooks.js';
import type { Intervention } from '../../src/engine/interventions/plan.js';
import { fixtureConfig, fixtureParams, spec } from '../helpers/tinyModel.js';

function fixtureModel(): HookedTransformer {
  return new HookedTransformer(makeConfig({ ...fixtureConfig(), normalization_type: 'LNPre' }), fixtureParams('default'), 'default', 'fixture', { device: 'cpu', threads: 1 });
}

test("ROME's window of restored layers", () => {
  assert.deepEqual(traceWindow(0, 10, 12), [0, 1, 2, 3, 4]);
  assert.deepEqual(traceWindow(6, 10, 12), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(traceWindow(11, 10, 12), [6, 7, 8, 9, 10, 11]);
  assert.deepEqual(traceWindow(1, 3, 2), [0, 1]);
});

test('causal tracing equals restoring each state in a full noisy forward', async () => {
  const m = fixtureModel();
  try {
    const toks = spec.tokens[0]!;
    const P = toks.length;
    const S = 3;
    const subject: [number, number] = [1, 3];
    const r = await causalTrace(m, toks, { subject, samples: S, window: 3, seed: 5, maxBatchRows: 7 });
    const d = m.cfg.d_model;
    assert.ok(Math.abs(r.noise - 3 * embeddingStd(m)) < 1e-12);
    // The reference: explicit noisy embeddings, one full forward per restored cell.
    const clean = await m.runWithCache([toks]);
    const embed = clean.cache.get('hook_embed')!;
    const noisy = tileBatch(embed, S);
    const z = gaussian(S * 2 * d, 5);
    for (let s = 0; s < S; s++) for (let p = 1; p < 3; p++) for (let i = 0; i < d; i++) noisy.data[(s * P + p) * d + i]! += r.noise * z[(s * 2 + p - 1) * d + i]!;
    const rows = Array.from({ length: S }, () => toks);
    const noise: Intervention = { kind: 'patch', hook: 'hook_embed', source: noisy };
    const prob = answerProbMetric(new Array<number>(S).fill(r.answer));
    assert.ok(Math.abs(r.lowScore - prob(await m.runWithHooks(rows, [noise]))) < 1e-6);
    assert.ok(Math.abs(r.highScore - answerProbMetric([r.answer])(clean.logits!)) < 1e-6);
    let worst = 0;
    for (const kind of ['resid', 'mlp', 'attn'] as const) {
      const table = r.scores[kind]!;
      assert.equal(table.length, P);
      for (let t = 0; t < P; t++) {
        for (let L = 0; L < 2; L++) {
          const layers = kind === 'resid' ? [L] : traceWindow(L, 3, 2);
          const hook = kind === 'resid' ? 'hook_resid_post' : kind === 'mlp' ? 'hook_mlp_out' : 'hook_attn_out';
          const ivs: Intervention[] = [noise, ...layers.map((k) => ({ kind: 'patch' as const, hook: `blocks.${k}.${hook}` as HookName, index: { pos: [t] }, source: tileBatch(clean.cache.get(`blocks.${k}.${hook}` as HookName)!, S) }))];
          const want = prob(await m.runWithHooks(rows, ivs));
          worst = Math.max(worst, Math.abs(table[t]![L]! - want));
        }
      }
    }
    assert.ok(worst < 1e-6, `max |batched - naive| = ${worst}`);
    // Restoring the last layer's output at the last token restores the clean probability.
    assert.ok(Math.abs(r.scores.resid![P - 1]![1]! - r.highScore) < 1e-5);
  } finally {
    await m.dispose();
  }
});

for (const receivers of ['logits', { heads: [{ layer: 1, head: 2 }, { layer: 1, head: 0 }], input: 'v' }, { heads: [{ layer: 1, head: 3 }], input: 'q' }] as PathPatchSpec['receivers'][]) {
  test(`path patching equals the two-run naive algorithm (receivers ${JSON.stringify(receivers)})`, async () => {
    const m = fixtureModel();
    try {
      const ld = logitDiffMetric(spec.answers);
      const metric = normalizedMetric(ld, ld(await m.forward(spec.tokens)), ld(await m.forward(spec.corrupted_tokens)));
      const s: PathPatchSpec = { receivers };
      const r = await pathPatch(m, spec.corrupted_tokens, spec.tokens, metric, s, { maxBatchRows: 8 });
      const layers = receivers === 'logits' ? 2 : 1;
      assert.equal(r.values.length, layers);
      for (let l = 0; l < layers; l++) {
        for (let h = 0; h < 4; h++) {
          const want = await naivePathPatchCell(m, spec.corrupted_tokens, spec.tokens, metric, s, { layer: l, head: h });
          assert.ok(Math.abs(r.values[l]![h]! - want) < 1e-5, `L${l}H${h}: ${r.values[l]![h]} vs ${want}`);
        }
      }
    } finally {
      await m.dispose();
    }
  });
}

test('path to the logits: with a single layer of senders the direct path equals patching the head output', async () => {
  const m = fixtureModel();
  try {
    const ld = logitDiffMetric(spec.answers);
    // Senders in the last layer: nothing is downstream to freeze, so path patching is plain z patching.
    const r = await pathPatch(m, spec.corrupted_tokens, spec.tokens, ld, { receivers: 'logits', senderLayers: [1] });
    const cleanZ = (await m.runWithCache(spec.tokens)).cache.get('blocks.1.attn.hook_z')!;
    for (let h = 0; h < 4; h++) {
      const want = ld(await m.runWithHooks(spec.corrupted_tokens, [{ kind: 'patch', hook: 'blocks.1.attn.hook_z', index: { head_index: [h] }, source: cleanZ }]));
      assert.ok(Math.abs(r.values[1]![h]! - want) < 1e-5);
    }
    assert.ok(r.values[0]!.every((v) => Number.isNaN(v)));
  } finally {
    await m.dispose();
  }
});

test('neuron activations, max-activating lines and neuron DLA', async () => {
  const m = fixtureModel();
  try {
    const rows = [spec.tokens[0]!, spec.tokens[1]!.slice(0, 5), [], spec.tokens[2]!];
    const acts = await neuronActivations(m, rows, 1, 7);
    const full = (await m.runWithCache([spec.tokens[2]!])).cache.get('blocks.1.mlp.hook_post')!;
    assert.deepEqual(acts[2]!.acts, []);
    acts[3]!.acts.forEach((a, p) => assert.ok(Math.abs(a - full.data[p * 128 + 7]!) < 1e-6));
    assert.equal(acts[1]!.acts.length, 5);
    const top = await maxActivatingLines(m, rows, 1, 7, 2);
    assert.equal(top.length, 2);
    const maxes = [0, 1, 3].map((i) => acts[i]!.max).sort((a, b) => b - a);
    assert.equal(top[0]!.max, maxes[0]);
    assert.equal(top[1]!.max, maxes[1]);

    // neuronDla = TransformerLens's stack_neuron_results -> logit_attrs, averaged over prompts.
    const dla = await neuronDla(m, spec.tokens, spec.answers, 1);
    const run = await m.runWithCache(spec.tokens);
    const cache = new ActivationCache(run.cache, m.cfg, m.params);
    const { stack, labels } = cache.stackNeuronResults(2, { pos_slice: -1 });
    const attrs = cache.logitAttrs(stack, spec.answers.map((a) => a[0]), spec.answers.map((a) => a[1]), { pos_slice: -1 });
    const B = spec.tokens.length;
    for (const n of [0, 7, 100, 127]) {
      const c = labels.indexOf(`L1N${n}`);
      let want = 0;
      for (let b = 0; b < B; b++) want += attrs.data[c * B + b]! / B;
      assert.ok(Math.abs(dla[n]! - want) < 1e-5, `N${n}: ${dla[n]} vs ${want}`);
    }
  } finally {
    await m.dispose();
  }
});

test('an attention-only model: causal tracing restores resid and attn by default; listing mlp is a located error before anything runs', async () => {
  const eng = await LoadedEngine.load('builtin:default', { processing: 'default' });
  try {
    assert.equal(eng.model.cfg.attn_only, true);
    const text = (kinds?: string[]) => JSON.stringify({ model: 'builtin:default', prompts: [{ prompt: 'Call me Ishmael.' }], analyses: [{ kind: 'causal_trace', subject: [1, 5], samples: 2, ...(kinds ? { kinds } : {}) }] });
    const bad = parseExperiment(text(['resid', 'mlp']), '/virtual/t.experiment.json', { read: () => null }).experiment!;
    const ds = checkWithModel(bad, eng.model.cfg, eng.tokenizer).diagnostics.filter((d) => d.severity === 'error');
    assert.equal(ds.length, 1);
    assert.match(ds[0]!.message, /attention-only: it has no MLP to restore; list "kinds": \["resid", "attn"\]/);
    const row = toTokens(eng.tokenizer, 'Call me Ishmael.', { prependBos: true, truncate: false }).tokens[0]!;
    const r = await causalTrace(eng.model, row, { subject: [1, 4], samples: 2 });
    assert.deepEqual(Object.keys(r.scores).sort(), ['attn', 'resid']);
  } finally {
    await eng.dispose();
  }
});
