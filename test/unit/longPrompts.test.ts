/**
 * The sweeps that compute only the positions a patch can change (the tokens from the patched
 * one on, the earlier ones' keys and values taken from the cached run) and skip the cells the
 * last position cannot read, checked against one full forward per cell on random models of
 * every block style: sequential (LayerNorm, GPT-2), parallel attention and MLP with rotary
 * positions (GPT-NeoX), attention-only, and grouped-query attention with RMSNorm, a gated MLP
 * and a sliding window (Mistral). Four or five layers, so a causal-tracing window restores
 * several layers (interventions in blocks that start after a prefix).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { HookedTransformer } from '../../src/engine/model/hookedTransformer.js';
import { makeConfig, type HookedTransformerConfig } from '../../src/engine/model/config.js';
import { paramSpecs } from '../../src/engine/model/paramSpecs.js';
import { f32 } from '../../src/engine/tensor/tensor.js';
import { mulberry32 } from '../../src/engine/tensor/mulberry32.js';
import type { Params } from '../../src/engine/model/params.js';
import { causalTrace, gaussian, traceWindow } from '../../src/engine/analysis/tracing.js';
import { tileBatch } from '../../src/engine/analysis/sweep.js';
import { answerProbMetric, logitDiffMetric, naivePatchCell, runPatchSweep, sweepLayout, type PatchSweepSpec } from '../../src/engine/analysis/patching.js';
import type { HookName } from '../../src/engine/hooks/hooks.js';
import type { Intervention } from '../../src/engine/interventions/plan.js';

function randomModel(c: Parameters<typeof makeConfig>[0], seed: number): HookedTransformer {
  const cfg: HookedTransformerConfig = makeConfig(c);
  const r = mulberry32(seed);
  const p: Params = new Map();
  for (const s of paramSpecs(cfg)) {
    const n = s.dims.reduce((a, b) => a * b, 1);
    const last = s.name.split('.').pop()!;
    const data = new Float32Array(n);
    // Norm weights near 1, everything else N(0, 0.3^2): large enough that every position matters.
    for (let i = 0; i < n; i++) data[i] = last === 'w' ? 1 + 0.1 * (r() - 0.5) : Math.sqrt(-2 * Math.log(Math.max(r(), 1e-12))) * Math.cos(2 * Math.PI * r()) * (s.isMatrix ? 0.3 : 0.05);
    p.set(s.name, f32(s.dims, data));
  }
  return new HookedTransformer(cfg, p, 'none', `random ${cfg.model_name}`, { device: 'cpu', threads: 1 });
}

const base = { d_model: 16, n_heads: 4, d_head: 4, d_mlp: 32, d_vocab: 40, n_ctx: 32 };
const models: [string, Parameters<typeof makeConfig>[0]][] = [
  ['sequential LayerNorm (GPT-2)', { ...base, model_name: 'gpt2-4', n_layers: 4, act_fn: 'gelu_new', normalization_type: 'LN' }],
  ['parallel attention and MLP, rotary (GPT-NeoX)', { ...base, model_name: 'neox-4', n_layers: 4, act_fn: 'gelu', normalization_type: 'LN', parallel_attn_mlp: true, positional_embedding_type: 'rotary', rotary_dim: 2 }],
  ['attention-only', { ...base, model_name: 'attn-only-3', n_layers: 3, act_fn: 'gelu_new', normalization_type: 'LN', attn_only: true }],
  // Multi-head attention without rotary: the last layer's query path (W_K q instead of keys) with ALiBi and a window.
  ['ALiBi, sliding window, multi-head', { ...base, model_name: 'alibi-local-3', n_layers: 3, act_fn: 'gelu_new', normalization_type: 'LN', positional_embedding_type: 'alibi', use_local_attn: true, window_size: 5, attn_types: ['local', 'global', 'local'] }],
  ['grouped-query attention, RMSNorm, gated MLP, sliding window (Mistral)', { ...base, model_name: 'mistral-5', n_layers: 5, act_fn: 'silu', normalization_type: 'RMS', gated_mlp: true, n_key_value_heads: 2, positional_embedding_type: 'rotary', rotary_dim: 4, use_local_attn: true, window_size: 5, attn_types: ['local', 'local', 'local', 'local', 'local'] }],
];

const P = 12;
const tokens = Array.from({ length: P }, (_, i) => (i * 7 + 3) % 40);
const corrupted = tokens.map((t, i) => (i === 4 || i === 9 ? (t + 11) % 40 : t));

for (const [what, c] of models) {
  test(`causal tracing equals one noisy forward per restored state: ${what}`, async () => {
    const m = randomModel(c, 7);
    try {
      const n = m.cfg.n_layers;
      const S = 3;
      const subject: [number, number] = [3, 6];
      const kinds = m.cfg.attn_only ? (['resid', 'attn'] as const) : (['resid', 'mlp', 'attn'] as const);
      const r = await causalTrace(m, tokens, { subject, samples: S, window: 4, seed: 3, kinds: [...kinds], maxBatchRows: 7 });
      const d = m.cfg.d_model;
      const clean = await m.runWithCache([tokens]);
      const noisy = tileBatch(clean.cache.get('hook_embed')!, S);
      const z = gaussian(S * 3 * d, 3);
      for (let s = 0; s < S; s++) for (let p = 3; p < 6; p++) for (let i = 0; i < d; i++) noisy.data[(s * P + p) * d + i]! += r.noise * z[(s * 3 + p - 3) * d + i]!;
      const rows = Array.from({ length: S }, () => tokens);
      const noise: Intervention = { kind: 'patch', hook: 'hook_embed', source: noisy };
      const prob = answerProbMetric(new Array<number>(S).fill(r.answer));
      let worst = 0;
      let where = '';
      for (const kind of kinds) {
        for (let t = 0; t < P; t++) {
          for (let L = 0; L < n; L++) {
            const layers = kind === 'resid' ? [L] : traceWindow(L, 4, n);
            const hook = kind === 'resid' ? 'hook_resid_post' : kind === 'mlp' ? 'hook_mlp_out' : 'hook_attn_out';
            const ivs: Intervention[] = [noise, ...layers.map((k) => ({ kind: 'patch' as const, hook: `blocks.${k}.${hook}` as HookName, index: { pos: [t] }, source: tileBatch(clean.cache.get(`blocks.${k}.${hook}` as HookName)!, S) }))];
            const want = prob(await m.runWithHooks(rows, ivs));
            const diff = Math.abs(r.scores[kind]![t]![L]! - want);
            if (!(diff <= worst)) [worst, where] = [diff, `${kind} token ${t} layer ${L}: ${r.scores[kind]![t]![L]} vs ${want}`];
          }
        }
      }
      assert.ok(worst < 1e-5, `max |batched - naive| = ${worst} at ${where}`);
      // The window restores more than one layer at some cells, and the prompt is long enough for a prefix.
      assert.ok(traceWindow(1, 4, n).length > 2);
    } finally {
      await m.dispose();
    }
  });

  test(`head patching by position equals the one-forward-per-cell loop: ${what}`, async () => {
    const m = randomModel(c, 11);
    try {
      const metric = logitDiffMetric([[5, 17]]);
      const cleanCache = (await m.runWithCache([tokens])).cache;
      for (const spec of [
        { kind: 'head', activation: 'z', by: 'pos' },
        { kind: 'head', activation: 'q', by: 'pos' },
        { kind: 'head', activation: 'k', by: 'pos' },
        { kind: 'head', activation: 'v', by: 'pos' },
        { kind: 'head', activation: 'pattern', by: 'pos' },
        { kind: 'layer_pos', hook: 'resid_pre' },
        { kind: 'layer_pos', hook: 'attn_out' },
        // Neurons: the next block starts from the rank-one queries, keys and values (RMS, GQA, rotary, parallel blocks).
        ...(m.cfg.attn_only ? [] : [{ kind: 'neuron', layer: 1 }]),
        // Heads over every position, each layer's cells in one batch (block L from the cached q, k, v).
        { kind: 'head', activation: 'z', by: 'all_pos' },
        { kind: 'head', activation: 'k', by: 'all_pos' },
        { kind: 'head', activation: 'pattern', by: 'all_pos' },
      ] as PatchSweepSpec[]) {
        const r = await runPatchSweep(m, [tokens], [corrupted], metric, spec, spec.kind === 'head' && spec.by === 'all_pos' ? {} : { maxBatchRows: 6 });
        let worst = 0;
        let where = '';
        for (const cell of sweepLayout(m.cfg, P, spec).cells) {
          const want = await naivePatchCell(m, cleanCache, [corrupted], metric, cell);
          const diff = Math.abs(r.values[cell.index]! - want);
          if (!(diff <= worst)) [worst, where] = [diff, `${cell.hook} ${JSON.stringify(cell.select)}: ${r.values[cell.index]} vs ${want}`];
        }
        assert.ok(worst < 1e-5, `${JSON.stringify(spec)}: max |batched - naive| = ${worst} at ${where}`);
      }
    } finally {
      await m.dispose();
    }
  });
}
