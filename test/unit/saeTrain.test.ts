/**
 * SAE training (src/engine/sae/train.ts, trainGraph.ts): the step graph's loss and gradients
 * against a float64 reference of SAELens's training loss (central finite differences, TopK's
 * choice held as the graph holds it), the Adam step, a short run on builtin:default's activations
 * whose loss falls, and the saved folder: MechLens loads it back and, spliced into the model,
 * computes the feature activations the trained parameters define.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OnnxRuntime, ortF32, ortI64 } from '../../src/engine/backends/onnx/runtime.js';
import { STEP_IO, stepHyper } from '../../src/engine/training/stepGraph.js';
import { buildSaeStepGraph, saeLayout, SAE_STEP_IO, type SaeTrainArchitecture } from '../../src/engine/sae/trainGraph.js';
import { collectActivations, evaluateSae, foldDecoderNorms, initSaeParams, saeLrAt, SaeTrainer, SaeTrainError, SAE_TRAIN_DEFAULTS, type Activations, type SaeTrainConfig } from '../../src/engine/sae/train.js';
import { bookText, corpusTrainRows } from '../../src/engine/sae/trainCorpus.js';
import { loadSaeFolder } from '../../src/engine/sae/sae.js';
import { featureActivations } from '../../src/engine/analysis/sae.js';
import { LoadedEngine } from '../../src/engine/engine.js';
import { Rng } from '../../src/engine/training/rng.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mechlens-sae-train-'));
process.on('exit', () => fs.rmSync(tmpRoot, { recursive: true, force: true }));

interface RefParams { W_enc: Float64Array; b_enc: Float64Array; W_dec: Float64Array; b_dec: Float64Array }
interface RefSpec { arch: SaeTrainArchitecture; D: number; S: number; B: number; k: number; coef: number; dead: boolean[]; kAux: number }

/** Pre-activations [B, S] and decoder norms [S] in float64. */
function encodePre(p: RefParams, x: Float64Array, s: RefSpec): { pre: Float64Array; norm: Float64Array } {
  const { D, S, B } = s;
  const pre = new Float64Array(B * S);
  for (let b = 0; b < B; b++) for (let f = 0; f < S; f++) {
    let v = p.b_enc[f]!;
    for (let d = 0; d < D; d++) v += (x[b * D + d]! - p.b_dec[d]!) * p.W_enc[d * S + f]!;
    pre[b * S + f] = v;
  }
  const norm = new Float64Array(S);
  for (let f = 0; f < S; f++) {
    let q = 0;
    for (let d = 0; d < D; d++) q += p.W_dec[f * D + d]! ** 2;
    norm[f] = Math.sqrt(q);
  }
  return { pre, norm };
}

/** The k largest of row b of `v` among `allowed` features. */
function topIdx(v: Float64Array, b: number, S: number, k: number, allowed: (f: number) => boolean = () => true): number[] {
  const idx = Array.from({ length: S }, (_, f) => f).filter(allowed);
  idx.sort((i, j) => v[b * S + j]! - v[b * S + i]!);
  return idx.slice(0, k);
}

/**
 * SAELens's training loss in float64: mse (Σ_d over the batch mean) + the L1 term (standard) or
 * the AuxK term (topk). `keep` / `keepAux` (per row: features) and `residual` fix TopK's choice
 * and the detached residual, as the graph treats them.
 */
function refLoss(p: RefParams, x: Float64Array, s: RefSpec, fixed?: { keep: number[][]; keepAux: number[][]; residual: Float64Array }): { loss: number; keep: number[][]; keepAux: number[][]; residual: Float64Array } {
  const { D, S, B } = s;
  const { pre, norm } = encodePre(p, x, s);
  const scaled = pre.map((v, i) => v * norm[i % S]!);
  const keep = fixed?.keep ?? Array.from({ length: B }, (_, b) => (s.arch === 'topk' ? topIdx(scaled, b, S, s.k) : Array.from({ length: S }, (_, f) => f)));
  const acts = new Float64Array(B * S);
  for (let b = 0; b < B; b++) for (const f of keep[b]!) acts[b * S + f] = Math.max(0, pre[b * S + f]!);
  const recon = new Float64Array(B * D);
  let sse = 0;
  for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) {
    let v = p.b_dec[d]!;
    for (let f = 0; f < S; f++) v += acts[b * S + f]! * p.W_dec[f * D + d]!;
    recon[b * D + d] = v;
    sse += (v - x[b * D + d]!) ** 2;
  }
  const residual = fixed?.residual ?? x.map((v, i) => v - recon[i]!);
  let aux = 0;
  let keepAux: number[][] = [];
  if (s.arch === 'standard') {
    for (let b = 0; b < B; b++) for (let f = 0; f < S; f++) aux += acts[b * S + f]! * norm[f]!;
    aux = (s.coef * aux) / B;
  } else {
    keepAux = fixed?.keepAux ?? Array.from({ length: B }, (_, b) => topIdx(scaled, b, S, s.kAux, (f) => s.dead[f]!));
    for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) {
      let v = 0;
      for (const f of keepAux[b]!) v += pre[b * S + f]! * p.W_dec[f * D + d]!;
      aux += (v - residual[b * D + d]!) ** 2;
    }
    aux = (s.coef * aux) / B;
  }
  return { loss: sse / B + aux, keep, keepAux, residual };
}

for (const arch of ['standard', 'topk'] as const) {
  test(`the ${arch} step graph's loss and gradient are SAELens's training loss and its derivative (float64 finite differences)`, async () => {
    const s: RefSpec = { arch, D: 6, S: 12, B: 5, k: 3, coef: arch === 'topk' ? 0.7 : 0.3, dead: Array.from({ length: 12 }, (_, f) => f % 3 === 1), kAux: 2 };
    const rng = new Rng(5, 0);
    const layout = saeLayout(s.D, s.S);
    const flat = Float32Array.from({ length: layout.total }, () => rng.normal() * 0.5);
    const x = Float32Array.from({ length: s.B * s.D }, () => rng.normal() * 2 + 0.3);
    const graph = buildSaeStepGraph({ architecture: arch, d_in: s.D, d_sae: s.S, k: s.k, apply_b_dec_to_input: true }, { betas: [0.9, 0.999], eps: 1e-8, maxGradNorm: null }, s.B);
    const rt = new OnnxRuntime({ device: 'cpu', threads: 1 });
    const sess = await rt.compile(graph);
    const N = layout.total;
    const feeds: Record<string, ReturnType<typeof ortF32>> = {
      [SAE_STEP_IO.x]: ortF32({ dims: [s.B, s.D], data: x }),
      [STEP_IO.params]: ortF32({ dims: [N], data: flat }),
      [STEP_IO.m]: ortF32({ dims: [N], data: new Float32Array(N) }),
      [STEP_IO.v]: ortF32({ dims: [N], data: new Float32Array(N) }),
      [STEP_IO.hyper]: ortF32({ dims: [4], data: stepHyper(1e-3, 0, [0.9, 0.999], 1) }),
      [SAE_STEP_IO.coef]: ortF32({ dims: [1], data: Float32Array.from([s.coef]) }),
    };
    if (arch === 'topk') {
      feeds[SAE_STEP_IO.dead] = ortF32({ dims: [s.S], data: Float32Array.from(s.dead, (d) => (d ? 1 : 0)) });
      feeds[SAE_STEP_IO.kAux] = ortI64(BigInt64Array.from([BigInt(s.kAux)]), [1]);
    }
    const out = await rt.run(sess, feeds, [STEP_IO.loss, STEP_IO.mOut, STEP_IO.paramsOut]);
    await sess.session.release();
    // Adam's first moment after one step from m = 0 is (1 - beta1) g (no clipping): the gradient.
    const grad = Float64Array.from(out[STEP_IO.mOut]!.data, (v) => v / 0.1);

    const unpack = (f: Float64Array): RefParams => {
      const at = (i: number, n: number) => f.slice(layout.offsets[i]!, layout.offsets[i]! + n);
      return { W_enc: at(0, s.D * s.S), b_enc: at(1, s.S), W_dec: at(2, s.S * s.D), b_dec: at(3, s.D) };
    };
    const base = Float64Array.from(flat);
    const x64 = Float64Array.from(x);
    const ref = refLoss(unpack(base), x64, s);
    assert.ok(Math.abs(out[STEP_IO.loss]!.data[0]! - ref.loss) <= 1e-4 * Math.max(1, Math.abs(ref.loss)), `loss ${out[STEP_IO.loss]!.data[0]} vs reference ${ref.loss}`);
    const fixed = { keep: ref.keep, keepAux: ref.keepAux, residual: ref.residual };
    const h = 1e-6;
    let worst = 0, where = -1, scale = 0;
    for (const g of grad) scale = Math.max(scale, Math.abs(g));
    for (let i = 0; i < N; i++) {
      const a = Float64Array.from(base), b = Float64Array.from(base);
      a[i]! += h;
      b[i]! -= h;
      const fd = (refLoss(unpack(a), x64, s, fixed).loss - refLoss(unpack(b), x64, s, fixed).loss) / (2 * h);
      const e = Math.abs(fd - grad[i]!);
      if (e > worst) { worst = e; where = i; }
    }
    assert.ok(scale > 0.1, 'the gradient is not trivially zero');
    assert.ok(worst <= 1e-4 * scale, `worst gradient difference ${worst.toExponential(2)} at flat index ${where} (largest gradient ${scale.toFixed(3)})`);
  });
}

test('the learning-rate schedule: linear warm-up from lr / w, linear decay to 0 over the last steps', () => {
  const c = { lr: 1, lr_warm_up_steps: 4, lr_decay_steps: 5, steps: 20 };
  assert.deepEqual([0, 1, 2, 3, 4, 10].map((i) => saeLrAt(c, i)), [0.25, 0.5, 0.75, 1, 1, 1]);
  [1, 0.6, 0.2].forEach((want, j) => assert.ok(Math.abs(saeLrAt(c, [15, 17, 19][j]!) - want) < 1e-12));
});

test('initialisation: decoder rows at decoder_init_norm, W_enc = W_decᵀ, biases 0; folding norms keeps the function', () => {
  const p = initSaeParams(8, 20, { decoder_init_norm: 0.1, seed: 3 });
  const W_dec = p.get('W_dec')!.data, W_enc = p.get('W_enc')!.data;
  for (let f = 0; f < 20; f++) {
    let s = 0;
    for (let d = 0; d < 8; d++) {
      s += W_dec[f * 8 + d]! ** 2;
      assert.equal(W_enc[d * 20 + f], W_dec[f * 8 + d]);
    }
    assert.ok(Math.abs(Math.sqrt(s) - 0.1) < 1e-6);
  }
  assert.ok(p.get('b_enc')!.data.every((v) => v === 0) && p.get('b_dec')!.data.every((v) => v === 0));
  const e = Float32Array.from(W_enc), b = Float32Array.from({ length: 20 }, (_, i) => i / 10), w = Float32Array.from(W_dec);
  foldDecoderNorms(e, b, w, 8, 20);
  for (let f = 0; f < 20; f++) {
    assert.ok(Math.abs(b[f]! - (f / 10) * 0.1) < 1e-6);
    let s = 0;
    for (let d = 0; d < 8; d++) s += w[f * 8 + d]! ** 2;
    assert.ok(Math.abs(s - 1) < 1e-5);
  }
});

test('config errors name the setting', async () => {
  const acts: Activations = { data: new Float32Array(64 * 4), tokens: 64, d_in: 4 };
  const base = { ...SAE_TRAIN_DEFAULTS, architecture: 'topk' as const, hook: 'blocks.0.hook_resid_post', d_sae: 8, k: 4, steps: 10, batch_size: 16 };
  const ctx = { d_in: 4, model_name: 'm', context_size: 8, prepend_bos: false, dataset: 'x' };
  await assert.rejects(SaeTrainer.create({ ...base, k: 9 }, ctx, acts), /k = 9 is larger than d_sae = 8/);
  await assert.rejects(SaeTrainer.create({ ...base, lr: 0 }, ctx, acts), /lr must be/);
  await assert.rejects(SaeTrainer.create({ ...base, batch_size: 128 }, ctx, acts), (e: unknown) => e instanceof SaeTrainError && /fewer than one batch of 128/.test((e as Error).message));
  await assert.rejects(SaeTrainer.create({ ...base, lr_warm_up_steps: 8, lr_decay_steps: 8 }, ctx, acts), /exceed steps/);
});

test('a short run on builtin:default activations: the loss falls; the saved SAELens folder loads back and, spliced, gives the trained features', async () => {
  const eng = await LoadedEngine.load('builtin:default', { device: 'cpu', threads: 2 });
  try {
    const hook = 'blocks.0.hook_resid_post';
    const { train, eval: evalRows } = corpusTrainRows(eng.tokenizer, bookText().slice(0, 60_000), 64, { prependBos: false, maxTokens: 40_000, evalTokens: 256 });
    const acts = await collectActivations(eng.model, hook, train, { batchRows: 64 });
    assert.equal(acts.tokens, train.length * 64);
    for (const arch of ['topk', 'standard'] as const) {
      const config: SaeTrainConfig = { ...SAE_TRAIN_DEFAULTS, architecture: arch, hook, d_sae: 256, k: 8, steps: 60, batch_size: 256, lr: 2e-3, log_every: 20, dead_feature_window: 20, seed: 11 };
      const t = await SaeTrainer.create(config, { d_in: 128, model_name: eng.model.cfg.model_name, context_size: 64, prepend_bos: false, dataset: 'Moby-Dick' }, acts, { threads: 2 });
      const first = await t.trainStep();
      const r = await t.run();
      await t.dispose();
      assert.equal(r.status, 'completed');
      assert.equal(t.step, 60);
      const last = r.snapshots[r.snapshots.length - 1]!;
      assert.ok(last.mse < 0.5 * first.mse, `${arch}: mse ${first.mse.toFixed(2)} at step 1 -> ${last.mse.toFixed(2)} at step 60`);
      if (arch === 'topk') assert.equal(last.l0, 8);
      const dir = t.save(path.join(tmpRoot, `${arch}-sae`));
      const sae = loadSaeFolder(dir);
      assert.equal(sae.cfg.architecture, arch);
      assert.equal(sae.cfg.hook_name, hook);
      assert.equal(sae.cfg.d_sae, 256);
      assert.equal(sae.cfg.layout, 'sae_lens_6');
      if (arch === 'topk') assert.equal(sae.cfg.k, 8);
      assert.ok(sae.sparsity && sae.sparsity.dims[0] === 256);
      const mem = t.toSae();
      for (const k of ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const) assert.deepEqual(sae.weights[k]!.data, mem.weights[k]!.data, k);
      // Spliced into the model, the loaded SAE's features are what the trained parameters define.
      const rows = evalRows.slice(0, 2);
      const fa = await featureActivations(eng.model, rows, sae);
      const x = await collectActivations(eng.model, hook, rows);
      const raw = t.rawParams();
      const s: RefSpec = { arch, D: 128, S: 256, B: x.tokens, k: 8, coef: 0, dead: [], kAux: 0 };
      const p: RefParams = { W_enc: Float64Array.from(raw.get('W_enc')!.data), b_enc: Float64Array.from(raw.get('b_enc')!.data), W_dec: Float64Array.from(raw.get('W_dec')!.data), b_dec: Float64Array.from(raw.get('b_dec')!.data) };
      const { pre, norm } = encodePre(p, Float64Array.from(x.data), s);
      let worst = 0;
      for (let b = 0; b < s.B; b++) {
        // Training's acts, as SAELens's hook_sae_acts_post: relu(pre · ‖W_dec[f]‖) on the kept features.
        const scaled = pre.map((v, i) => v * (arch === 'topk' ? norm[i % 256]! : 1));
        const keep = new Set(arch === 'topk' ? topIdx(scaled, b, 256, 8) : Array.from({ length: 256 }, (_, f) => f));
        for (let f = 0; f < 256; f++) {
          const want = keep.has(f) ? Math.max(0, scaled[b * 256 + f]!) : 0;
          worst = Math.max(worst, Math.abs(fa.acts.data[b * 256 + f]! - want));
        }
      }
      assert.ok(worst < 1e-4, `${arch}: spliced feature activations differ from the trained parameters' by ${worst}`);
      const ev = await evaluateSae(eng.model, sae, evalRows);
      assert.equal(ev.tokens, evalRows.length * 64);
      assert.ok(ev.explainedVariance > 0 && ev.explainedVariance <= 1, `explained variance ${ev.explainedVariance}`);
    }
  } finally {
    await eng.model.dispose();
  }
});

test('a whole run refuses more activations than it keeps in memory, naming the largest corpus_tokens', async () => {
  const { trainSaeRun } = await import('../../src/engine/sae/trainRun.js');
  await assert.rejects(
    trainSaeRun({
      model: 'builtin:default', hook: 'blocks.1.hook_resid_post', architecture: 'topk', expansion_factor: 8, k: 16, l1_coefficient: 5, l1_warm_up_steps: 0, aux_loss_coefficient: 1,
      apply_b_dec_to_input: true, b_dec_init: 'mean', decoder_init_norm: 0.1, steps: 10, batch_size: 256, lr: 1e-3, betas: [0.9, 0.999], lr_warm_up_steps: 0, lr_decay_steps: 0,
      max_grad_norm: 1, dead_feature_window: 100, log_every: 5, corpus: 'builtin:book', corpus_tokens: 10_000_000, eval_tokens: 0, seed: 1, output: path.join(tmpRoot, 'never'),
    }, { threads: 1 }),
    /corpus_tokens 10000000 x width 128 x 4 bytes is 4\.8 GiB of activations; at most 4 GiB are kept: lower corpus_tokens to 8388608 or less/,
  );
  assert.ok(!fs.existsSync(path.join(tmpRoot, 'never')));
});
