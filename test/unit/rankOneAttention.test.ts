/**
 * The neuron sweeps' rank-one attention (src/engine/analysis/rankOneAttention.ts): block L+1's
 * resid_mid computed from the rank-one change of its input equals the block run densely on the
 * patched residual, and neuron sweeps that use it equal the one-forward-per-cell loop, on a
 * GPT-2-style model (LayerNorm, unprocessed and processed: LN and LNPre) and a Llama-style one
 * (RMSNorm, grouped-query attention, rotary, gated MLP) and one with grouped-query attention and
 * learned positions (whose scores are expanded rather than formed from q and k), and soft-capped
 * scores, 4 layers each so that the block after
 * the patched layer is first, middle and last. A family the path does not model (parallel
 * attention and MLP) is named by rankOneAttentionUnsupported and still sweeps exactly.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig, type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { logitDiffMetric, naivePatchCell, runPatchSweep, sweepLayout } from '../../src/engine/analysis/patching.js';
import { rankOneAttention, rankOneAttentionUnsupported } from '../../src/engine/analysis/rankOneAttention.js';
import type { OutputName } from '../../src/engine/hooks/hooks.js';
import { f32, type F32 } from '../../src/engine/tensor/tensor.js';
import { GPT2_LIKE, LLAMA_LIKE, scaledRandomModel, SMALL_SHAPE } from '../helpers/smallFamilies.js';

const base = SMALL_SHAPE;
const families: Record<string, HookedTransformerConfig> = {
  gpt2: GPT2_LIKE,
  llama: LLAMA_LIKE,
  // Grouped-query attention without rotary: the path that expands the scores instead of forming q and k.
  'rms-gqa-learned-pos': makeConfig({ ...base, model_name: 'rms-gqa', act_fn: 'gelu', normalization_type: 'RMS', n_key_value_heads: 2 }),
  // Soft-capped scores (tanh before the softmax): the query-only terms of the expanded scores count.
  'gpt2-softcap': makeConfig({ ...base, model_name: 'gpt2-softcap', act_fn: 'gelu_new', normalization_type: 'LN', attn_scores_soft_cap: 2 }),
};

const model = (cfg: HookedTransformerConfig, mode: 'none' | 'default'): HookedTransformer => scaledRandomModel(cfg, mode, 3);

// 3 prompts x 6 tokens; the corrupted prompts differ from position 2 on (a shared prefix of 2).
const clean = [[1, 5, 9, 14, 3, 7], [2, 8, 11, 4, 6, 12], [1, 13, 21, 17, 30, 9]];
const corrupted = [[1, 5, 19, 24, 3, 8], [2, 8, 31, 40, 6, 2], [1, 13, 41, 7, 33, 19]];
const answers: [number, number][] = [[3, 4], [10, 20], [7, 8]];

function maxDiff(a: F32, b: F32): { worst: number; at: number } {
  assert.deepEqual(a.dims, b.dims);
  let worst = 0, at = -1;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i]! - b.data[i]!);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  return { worst, at };
}

for (const [family, cfg] of Object.entries(families)) {
  for (const mode of ['none', 'default'] as const) {
    test(`rank-one attention equals block L+1 run densely on the patched residual (${family}, ${mode})`, async () => {
      const m = model(cfg, mode);
      try {
        const B = corrupted.length, P = corrupted[0]!.length, d = cfg.d_model;
        const names = [0, 1, 2].flatMap((l) => [`blocks.${l}.hook_resid_mid`, `blocks.${l}.hook_mlp_out`]) as OutputName[];
        const cache = (await m.run(corrupted, { names, noLogits: true })).cache;
        for (const L of [0, 1, 2]) {
          assert.equal(rankOneAttentionUnsupported(m.cfg, L + 1), null);
          const residMid = cache.get(`blocks.${L}.hook_resid_mid` as OutputName)!;
          const mlpOut = cache.get(`blocks.${L}.hook_mlp_out` as OutputName)!;
          const Wout = m.params.get(`blocks.${L}.mlp.W_out`)!.data;
          const neurons = [0, 7, 33, 63];
          const dirs = f32([neurons.length, d]);
          neurons.forEach((n, i) => dirs.data.set(Wout.subarray(n * d, (n + 1) * d), i * d));
          const plan = await rankOneAttention(m, L + 1, residMid, mlpOut, dirs);
          // Cells 1 and 3 (neurons 7 and 63), alpha of size ~1 at every position.
          const chunk = [1, 3];
          const alpha = f32([chunk.length, B, P], Float32Array.from({ length: chunk.length * B * P }, (_, i) => Math.sin(1.7 * i + L) * 1.5));
          const resid = f32([chunk.length * B, P, d]);
          chunk.forEach((k, c) => {
            for (let r = 0; r < B * P; r++) {
              const a = alpha.data[c * B * P + r]!;
              for (let j = 0; j < d; j++) resid.data[(c * B * P + r) * d + j] = residMid.data[r * d + j]! + Math.fround(mlpOut.data[r * d + j]! + a * dirs.data[k * d + j]!);
            }
          });
          const want = (await m.run(null, { residual: resid, startAtLayer: L + 1, stopAtLayer: L + 2, names: [`blocks.${L + 1}.hook_resid_mid` as OutputName], noLogits: true })).cache.get(`blocks.${L + 1}.hook_resid_mid` as OutputName)!;
          for (const from of [0, 2, P - 1]) {
            const got = await plan.residMid(chunk, alpha, from);
            const { worst, at } = maxDiff(got, slice(want, from));
            assert.ok(worst <= 1e-4, `${family} ${mode} L=${L} from=${from}: max |rank-one - dense| = ${worst} at flat index ${at} of [${got.dims.join(', ')}]`);
          }
        }
      } finally {
        await m.dispose();
      }
    });

    test(`neuron sweeps through the rank-one attention equal the naive loop (${family}, ${mode})`, async () => {
      const m = model(cfg, mode);
      try {
        const metric = logitDiffMetric(answers);
        const cleanCache = (await m.runWithCache(clean)).cache;
        let spread = 0;
        for (const layer of [0, 1, 2, 3]) {
          const spec = { kind: 'neuron' as const, layer, neurons: [0, 5, 17, 40, 63] };
          // Small batches: several runs per sweep.
          const fast = await runPatchSweep(m, clean, corrupted, metric, spec, { maxBatchRows: 6 });
          const plain = await runPatchSweep(m, clean, corrupted, metric, spec, { noRankOne: true });
          for (const cell of sweepLayout(m.cfg, clean[0]!.length, spec).cells) {
            const naive = await naivePatchCell(m, cleanCache, corrupted, metric, cell);
            const v = fast.values[cell.index]!;
            assert.ok(Math.abs(v - naive) <= 1e-4, `${family} ${mode} layer ${layer} neuron ${cell.select.d_mlp![0]}: rank-one ${v}, naive ${naive}`);
            assert.ok(Math.abs(plain.values[cell.index]! - naive) <= 1e-4, `${family} ${mode} layer ${layer}: plain path ${plain.values[cell.index]}, naive ${naive}`);
            spread = Math.max(spread, Math.abs(naive - fast.values[0]!));
          }
        }
        // The neurons matter: the cells differ from one another (a path that ignored the patch would not).
        assert.ok(spread > 1e-3, `cells barely differ (${spread}): the test model is too weak to check anything`);
      } finally {
        await m.dispose();
      }
    });
  }
}

test('a family the rank-one attention does not model is named and still sweeps exactly (parallel attention and MLP)', async () => {
  const cfg = makeConfig({ ...base, model_name: 'parallel', normalization_type: 'LN', parallel_attn_mlp: true, positional_embedding_type: 'rotary', original_architecture: 'GPTNeoXForCausalLM' });
  assert.match(rankOneAttentionUnsupported(cfg, 1) ?? '', /parallel/);
  const qk = makeConfig({ ...base, model_name: 'qk-norm', normalization_type: 'RMS', use_qk_norm: true, positional_embedding_type: 'rotary', original_architecture: 'Qwen3ForCausalLM' });
  assert.match(rankOneAttentionUnsupported(qk, 1) ?? '', /q\/k norm/);
  const m = model(cfg, 'none');
  try {
    await assert.rejects(rankOneAttention(m, 1, f32([1, 2, 32]), f32([1, 2, 32]), f32([1, 32])), /rank-one attention of block 1: parallel/);
    const metric = logitDiffMetric(answers);
    const cleanCache = (await m.runWithCache(clean)).cache;
    const spec = { kind: 'neuron' as const, layer: 1, neurons: [2, 9] };
    const r = await runPatchSweep(m, clean, corrupted, metric, spec);
    for (const cell of sweepLayout(m.cfg, clean[0]!.length, spec).cells) {
      const naive = await naivePatchCell(m, cleanCache, corrupted, metric, cell);
      assert.ok(Math.abs(r.values[cell.index]! - naive) <= 1e-4, `parallel: batched ${r.values[cell.index]}, naive ${naive}`);
    }
  } finally {
    await m.dispose();
  }
});

/** t [rows, pos, d] -> positions [from, pos). */
function slice(t: F32, from: number): F32 {
  const [R, P, d] = t.dims as [number, number, number];
  const out = new Float32Array(R * (P - from) * d);
  for (let r = 0; r < R; r++) out.set(t.data.subarray((r * P + from) * d, (r + 1) * P * d), r * (P - from) * d);
  return f32([R, P - from, d], out);
}
