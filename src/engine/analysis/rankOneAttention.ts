/**
 * The whole attention of the block after a single-neuron patch, from the rank-one change of its
 * input. Patching neuron n of layer L changes the residual entering block L+1 by alpha_j * u
 * (alpha [batch, pos] = clean - corrupted activation of the neuron at position j, u = W_out[n]
 * [d_model]). With x the corrupted residual and xc, uc their centred versions (as they are for
 * RMS norms), ln1 is linear up to one scalar per position:
 *   ln1(x_j + alpha_j u) W + b = (A_j + alpha_j B) / s_j + b'     A_j = xc_j W', B = uc W'
 *   s_j^2 = (|xc_j|^2 + 2 alpha_j xc_j.uc + alpha_j^2 |uc|^2) / d_model + eps
 * (W' = diag(ln1.w) W, b' = ln1.b W + b). Queries and keys are formed that way, element-wise
 * (rotary and grouped-query attention as the block does them); the values never are: with
 * pattern p of head h,
 *   z_i W_O^h = sum_j (p_ij / s_j) (Av_j W_O^h) + (sum_j p_ij alpha_j / s_j) (Bv W_O^h) + b'_v W_O^h
 * where Av_j W_O^h [batch, head, pos, d_model] comes from the corrupted run once per sweep and
 * Bv W_O^h [head, d_model] once per neuron. So a cell's attention costs
 * O(heads · pos^2 · d_model) instead of 4 d_model^2 per position, and the cell continues from
 * block L+1's resid_mid (its MLP and the later blocks run densely, they are nonlinear in alpha).
 * The same numbers as the naive loop up to float32 rounding of the reassociated sums.
 */
import type { HookedTransformer } from '../model/hookedTransformer.js';
import { attnType, isMoe, isPostNormArch, qkNorm, type HookedTransformerConfig } from '../model/config.js';
import { kvParamName } from '../model/paramSpecs.js';
import { GraphBuilder } from '../graph/builder.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { applyRotary, ungroup } from '../graph/components/attention.js';
import { dimOf, SLICE_END } from '../graph/components/emitter.js';
import { ortF32, ortI64 } from '../backends/onnx/runtime.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { cachedSession, matmul } from './onnxMath.js';

export interface RankOneAttention {
  /**
   * blocks.(L+1).hook_resid_mid of positions [from, pos) for `neurons` (indices into the
   * directions), alpha [cells, batch, pos]: [cells * batch, pos - from, d_model].
   */
  residMid(neurons: readonly number[], alpha: F32, from: number): Promise<F32>;
}

/**
 * Why block `layer`'s attention cannot be taken from a rank-one change of its input (null: it
 * can): what the path above does not model (post-norms, parallel blocks, q/k norms, OLMoE's clamp,
 * ALiBi, sliding windows, shortformer positions) runs the block densely instead.
 */
export function rankOneAttentionUnsupported(cfg: HookedTransformerConfig, layer: number): string | null {
  const t = cfg.normalization_type;
  if (layer >= cfg.n_layers) return 'no block after the layer';
  if (t === null) return 'no normalization before attention';
  if (isPostNormArch(cfg) || cfg.use_normalization_before_and_after) return 'post-norms';
  if (cfg.parallel_attn_mlp) return 'parallel attention and MLP';
  if (cfg.attn_only || cfg.d_mlp === null || isMoe(cfg)) return 'no dense MLP';
  if (qkNorm(cfg) !== null || cfg.clip_qkv !== null) return 'q/k norms or clamps';
  if (cfg.positional_embedding_type !== 'standard' && cfg.positional_embedding_type !== 'rotary' && cfg.positional_embedding_type !== 'none') return `${cfg.positional_embedding_type} positions`;
  if (attnType(cfg, layer) !== 'global') return 'sliding-window attention';
  return null;
}

/**
 * Prepares the rank-one attention of block `layer` reading x = residMid + mlpOut (both
 * [batch, pos, d_model], the corrupted run's layer-(layer-1) hooks) plus alpha * dirs[n]
 * (dirs [neurons, d_model]). Throws where rankOneAttentionUnsupported says why.
 */
export async function rankOneAttention(model: HookedTransformer, layer: number, residMid: F32, mlpOut: F32, dirs: F32): Promise<RankOneAttention> {
  const cfg = model.cfg;
  const why = rankOneAttentionUnsupported(cfg, layer);
  if (why) throw new Error(`rank-one attention of block ${layer}: ${why}`);
  const t = cfg.normalization_type;
  const d = cfg.d_model, H = cfg.n_heads, dh = cfg.d_head;
  const KV = cfg.n_key_value_heads ?? H;
  const Fqk = (H + KV) * dh, Fv = KV * dh;
  const [B, P] = residMid.dims as [number, number, number];
  const N = dirs.dims[0]!;
  const p = (name: string) => {
    const v = model.params.get(`blocks.${layer}.${name}`);
    if (!v) throw new Error(`model parameter blocks.${layer}.${name} is missing`);
    return v;
  };
  const centre = t === 'LN' || t === 'LNPre';
  const gamma = t === 'LN' || t === 'RMS' ? p('ln1.w').data : null;
  const beta = t === 'LN' ? p('ln1.b').data : null;
  /** diag(ln1.w) W [d_model, heads·d_head] and ln1.b W + b [heads·d_head] of W [heads, d_model, d_head], b [heads, d_head]. */
  const folded = (w: F32, b: F32, heads: number): { W: Float32Array; bias: Float32Array } => {
    const F = heads * dh;
    const W = new Float32Array(d * F);
    const bias = new Float32Array(F);
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < d; j++) {
        const g = gamma ? gamma[j]! : 1;
        const src = (h * d + j) * dh;
        const dst = j * F + h * dh;
        for (let e = 0; e < dh; e++) W[dst + e] = Math.fround(w.data[src + e]! * g);
      }
      for (let e = 0; e < dh; e++) {
        let s = b.data[h * dh + e]!;
        if (beta) for (let j = 0; j < d; j++) s += beta[j]! * w.data[(h * d + j) * dh + e]!;
        bias[h * dh + e] = s;
      }
    }
    return { W, bias };
  };
  const q = folded(p('attn.W_Q'), p('attn.b_Q'), H);
  const k = folded(p(`attn.${kvParamName(cfg, 'W_K')}`), p(`attn.${kvParamName(cfg, 'b_K')}`), KV);
  const v = folded(p(`attn.${kvParamName(cfg, 'W_V')}`), p(`attn.${kvParamName(cfg, 'b_V')}`), KV);
  // W'_QK [d_model, (head_index + kv_head)·d_head], columns Q | K.
  const Wqk = new Float32Array(d * Fqk);
  for (let j = 0; j < d; j++) {
    Wqk.set(q.W.subarray(j * H * dh, (j + 1) * H * dh), j * Fqk);
    Wqk.set(k.W.subarray(j * KV * dh, (j + 1) * KV * dh), j * Fqk + H * dh);
  }
  const bqk = new Float32Array(Fqk);
  bqk.set(q.bias);
  bqk.set(k.bias, H * dh);
  const WO = p('attn.W_O'); // [head_index, d_head, d_model]
  // The constant part of attn_out: b_O + sum_h b'_v[kv(h)] W_O^h [d_model].
  const co = new Float32Array(d);
  const rep = H / KV;
  for (let i = 0; i < d; i++) {
    let s = p('attn.b_O').data[i]!;
    for (let h = 0; h < H; h++) {
      const kv = Math.floor(h / rep);
      for (let e = 0; e < dh; e++) s += v.bias[kv * dh + e]! * WO.data[(h * dh + e) * d + i]!;
    }
    co[i] = s;
  }

  const centred = (t0: Float32Array, rows: number): { c: F32; sq: Float32Array } => {
    const c = new Float32Array(rows * d);
    const sq = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let mean = 0;
      if (centre) {
        for (let j = 0; j < d; j++) mean += t0[r * d + j]!;
        mean /= d;
      }
      let s = 0;
      for (let j = 0; j < d; j++) {
        const val = Math.fround(t0[r * d + j]! - mean);
        c[r * d + j] = val;
        s += val * val;
      }
      sq[r] = s;
    }
    return { c: f32([rows, d], c), sq };
  };
  // x = the corrupted residual entering the block, formed as the block's own input is (resid_mid + mlp_out in float32).
  const x = new Float32Array(B * P * d);
  for (let i = 0; i < x.length; i++) x[i] = residMid.data[i]! + mlpOut.data[i]!;
  const xs = centred(x, B * P);
  const us = centred(dirs.data, N);
  const rt = model.runtime;
  const WqkT = f32([d, Fqk], Wqk);
  const WvT = f32([d, Fv], v.W);
  // Per prompt and position: xc W'_QK [batch·pos, Fqk], xc W'_V [batch·pos, kv_head·d_head];
  // per neuron: uc W'_QK [N, Fqk], uc W'_V [N, kv_head·d_head], uc . xc [N, batch·pos].
  const aQk = await matmul(rt, xs.c, WqkT);
  const aV = await matmul(rt, xs.c, WvT);
  const bQk = await matmul(rt, us.c, WqkT);
  const bV = await matmul(rt, us.c, WvT);
  const xcT = new Float32Array(d * B * P);
  for (let r = 0; r < B * P; r++) for (let j = 0; j < d; j++) xcT[j * B * P + r] = xs.c.data[r * d + j]!;
  const uxAll = await matmul(rt, us.c, f32([d, B * P], xcT));
  // Av_j W_O^h [batch, head_index·pos, d_model] (head-major within a prompt, for the pattern GEMM).
  const avH = new Float32Array(H * B * P * dh); // [head_index, batch·pos, d_head]
  for (let h = 0; h < H; h++) {
    const kv = Math.floor(h / rep);
    for (let r = 0; r < B * P; r++) avH.set(aV.data.subarray(r * Fv + kv * dh, r * Fv + (kv + 1) * dh), (h * B * P + r) * dh);
  }
  const avOH = await matmul(rt, f32([H, B * P, dh], avH), WO); // [head_index, batch·pos, d_model]
  const avO = new Float32Array(B * H * P * d);
  for (let h = 0; h < H; h++) for (let b = 0; b < B; b++) avO.set(avOH.data.subarray((h * B * P + b * P) * d, (h * B * P + b * P + P) * d), ((b * H + h) * P) * d);

  // Without rotary embeddings the scores need no per-cell q or k at all: per head,
  //   q_i . k_j = inv_i inv_j (Aq_i.Ak_j + a_j Aq_i.Bk + a_i Bq.Ak_j + a_i a_j Bq.Bk)
  //             + inv_i (Aq_i.bk + a_i Bq.bk) + inv_j (bq.Ak_j + a_j bq.Bk) + bq.bk
  // (inv = 1 / s, a = alpha); the products of two per-prompt terms are formed here once,
  // those with a per-neuron B in the graph by GEMMs over all cells of a run, so a run's
  // element-wise work is on [cells, batch, head, n, pos] scores instead of [cells, batch, pos,
  // (head + kv_head) d_head] queries and keys (~20x smaller at GPT-2 small's shapes).
  const rotary = cfg.positional_embedding_type === 'rotary';
  const expanded: Record<string, F32> = {};
  if (!rotary) {
    const aqH = new Float32Array(H * B * P * dh); // [head_index, batch·pos, d_head]
    const akH = new Float32Array(H * B * P * dh); // keys per query head (grouped-query: repeated)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / rep);
      for (let r = 0; r < B * P; r++) {
        aqH.set(aQk.data.subarray(r * Fqk + h * dh, r * Fqk + (h + 1) * dh), (h * B * P + r) * dh);
        akH.set(aQk.data.subarray(r * Fqk + H * dh + kvh * dh, r * Fqk + H * dh + (kvh + 1) * dh), (h * B * P + r) * dh);
      }
    }
    const bq = q.bias; // [head_index·d_head]
    const bkH = new Float32Array(H * dh);
    for (let h = 0; h < H; h++) bkH.set(k.bias.subarray(Math.floor(h / rep) * dh, (Math.floor(h / rep) + 1) * dh), h * dh);
    const t1 = new Float32Array(B * H * P * P); // Aq_i . Ak_j [batch, head_index, pos, pos]
    const t2 = new Float32Array(B * H * P); // Aq_i . bk [batch, head_index, pos]
    const t3 = new Float32Array(B * H * P); // bq . Ak_j
    const t4 = new Float32Array(H); // bq . bk
    const dot = (x: Float32Array, xo: number, y: Float32Array, yo: number) => {
      let acc = 0;
      for (let e = 0; e < dh; e++) acc += x[xo + e]! * y[yo + e]!;
      return acc;
    };
    for (let h = 0; h < H; h++) {
      t4[h] = dot(bq, h * dh, bkH, h * dh);
      for (let b = 0; b < B; b++) {
        for (let i = 0; i < P; i++) {
          const qi = (h * B * P + b * P + i) * dh;
          t2[(b * H + h) * P + i] = dot(aqH, qi, bkH, h * dh);
          t3[(b * H + h) * P + i] = dot(bq, h * dh, akH, qi);
          for (let j = 0; j < P; j++) t1[((b * H + h) * P + i) * P + j] = dot(aqH, qi, akH, (h * B * P + b * P + j) * dh);
        }
      }
    }
    Object.assign(expanded, { aqh: f32([H, B * P, dh], aqH), akh: f32([H, B * P, dh], akH), bq: f32([H, dh], bq), t1: f32([B, H, P, P], t1), t3: f32([B, H, P], t3) });
    if (capped(cfg)) Object.assign(expanded, { bkh: f32([H, dh], bkH), t2: f32([B, H, P], t2), t4: f32([H], t4) });
  }
  const session = cachedSession(rt, `rankOneAttention/${JSON.stringify([d, H, KV, dh, cfg.eps, cfg.use_attn_scale, cfg.attn_scale, cfg.attn_scores_soft_cap, cfg.positional_embedding_type, cfg.rotary_dim, cfg.rotary_base, cfg.rotary_adjacent_pairs, cfg.use_NTK_by_parts_rope, cfg.rotary_scaling_factor])}`, () => attentionGraph(cfg, layer));
  const consts = {
    avo: ortF32(f32([B, H * P, d], avO)),
    xx: ortF32(f32([B, P], xs.sq)),
    rmid: ortF32(residMid),
    mlp: ortF32(mlpOut),
    ...(rotary ? { a: ortF32(f32([B, P, Fqk], aQk.data)), bqk0: ortF32(f32([Fqk], bqk)) } : {}),
    wo: ortF32(WO),
    co: ortF32(f32([d], co)),
    ...Object.fromEntries(Object.entries(expanded).map(([name, t]) => [name, ortF32(t)])),
  };
  return {
    async residMid(neurons, alpha, from) {
      const C = neurons.length;
      const bqkC = new Float32Array(C * Fqk);
      const bvC = new Float32Array(C * Fv);
      const uC = new Float32Array(C * d);
      const uu = new Float32Array(C);
      const ux = new Float32Array(C * B * P);
      neurons.forEach((n, c) => {
        bqkC.set(bQk.data.subarray(n * Fqk, (n + 1) * Fqk), c * Fqk);
        bvC.set(bV.data.subarray(n * Fv, (n + 1) * Fv), c * Fv);
        uC.set(dirs.data.subarray(n * d, (n + 1) * d), c * d);
        uu[c] = us.sq[n]!;
        ux.set(uxAll.data.subarray(n * B * P, (n + 1) * B * P), c * B * P);
      });
      const out = await rt.run(await session, {
        ...consts,
        alpha: ortF32(alpha),
        bqk: ortF32(f32([C, Fqk], bqkC)),
        bv: ortF32(f32([C, 1, KV, dh], bvC)),
        u: ortF32(f32([C, 1, 1, d], uC)),
        uu: ortF32(f32([C, 1, 1], uu)),
        ux: ortF32(f32([C, B, P], ux)),
        from: ortI64(BigInt64Array.from([BigInt(from)]), [1]),
      }, ['mid']);
      return out['mid']!;
    },
  };
}

/** The per-chunk graph: every cell's blocks.L.hook_resid_mid at positions [from, pos) (see the file header). */
function attentionGraph(cfg: HookedTransformerConfig, layer: number): GraphBuilder {
  const d = cfg.d_model, H = cfg.n_heads, dh = cfg.d_head;
  const KV = cfg.n_key_value_heads ?? H;
  const g = new GraphBuilder('rank_one_attention');
  const rotary = cfg.positional_embedding_type === 'rotary';
  const avo = g.input('avo', OnnxDType.FLOAT, ['batch', 'head_pos', d]); // Av W_O, [batch, head_index·pos, d_model]
  const xx = g.input('xx', OnnxDType.FLOAT, ['batch', 'pos']); // |xc|^2
  const rmid = g.input('rmid', OnnxDType.FLOAT, ['batch', 'pos', d]); // corrupted resid_mid of layer L
  const mlp = g.input('mlp', OnnxDType.FLOAT, ['batch', 'pos', d]); // corrupted mlp_out of layer L
  const wo = g.input('wo', OnnxDType.FLOAT, [H, dh, d]);
  const co = g.input('co', OnnxDType.FLOAT, [d]);
  const alpha = g.input('alpha', OnnxDType.FLOAT, ['cells', 'batch', 'pos']);
  const bqk = g.input('bqk', OnnxDType.FLOAT, ['cells', (H + KV) * dh]); // uc W'_QK
  const bv = g.input('bv', OnnxDType.FLOAT, ['cells', 1, KV, dh]); // uc W'_V
  const u = g.input('u', OnnxDType.FLOAT, ['cells', 1, 1, d]); // W_out[n]
  const uu = g.input('uu', OnnxDType.FLOAT, ['cells', 1, 1]); // |uc|^2
  const ux = g.input('ux', OnnxDType.FLOAT, ['cells', 'batch', 'pos']); // uc . xc
  const from = g.input('from', OnnxDType.INT64, [1]);
  const zero = g.constI64([0]);
  const end = g.constI64([SLICE_END]);
  const i1 = g.constI64([1]), i2 = g.constI64([2]), i3 = g.constI64([3]);
  const fromPos = (t: string, axis: string) => g.op('Slice', [t, from, end, axis]);

  // 1 / s [cells, batch, pos], s^2 = (|xc|^2 + 2 alpha uc.xc + alpha^2 |uc|^2) / d_model + eps.
  const ms = g.op('Div', [g.op('Add', [g.op('Add', [xx, g.op('Mul', [g.op('Mul', [g.constF([2]), alpha]), ux])]), g.op('Mul', [g.op('Mul', [alpha, alpha]), uu])]), g.constF([d])]);
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constF([cfg.eps])])])]);
  const alpha4 = g.op('Unsqueeze', [alpha, i3]); // [cells, batch, pos, 1]
  const cb = g.op('Mul', [dimOf(g, alpha, 0), dimOf(g, alpha, 1)]); // cells·batch
  const P = dimOf(g, alpha, 2);
  const n = g.op('Sub', [P, from]);
  const cells = dimOf(g, alpha, 0), batch = dimOf(g, alpha, 1);
  let scores: string; // [cells·batch, head_index, n, pos]
  if (rotary) {
    // q, k = (A + alpha B) / s + b' [cells, batch, pos, Fqk], rotated as the block rotates them.
    const a = g.input('a', OnnxDType.FLOAT, ['batch', 'pos', (H + KV) * dh]); // xc W'_QK
    const bqk0 = g.input('bqk0', OnnxDType.FLOAT, [(H + KV) * dh]); // b'_QK
    const inv4 = g.op('Unsqueeze', [inv, i3]);
    const bqk4 = g.op('Unsqueeze', [bqk, g.constI64([1, 2])]); // [cells, 1, 1, Fqk]
    const qkAll = g.op('Add', [g.op('Mul', [g.op('Add', [g.op('Unsqueeze', [a, zero]), g.op('Mul', [alpha4, bqk4])]), inv4]), bqk0]);
    let qv = g.op('Slice', [fromPos(qkAll, i2), zero, g.constI64([H * dh]), i3]);
    qv = g.op('Reshape', [qv, g.op('Concat', [cb, n, g.constI64([H, dh])], { axis: 0 })]); // [cells·batch, n, head_index, d_head]
    let kv = g.op('Slice', [qkAll, g.constI64([H * dh]), end, i3]);
    kv = g.op('Reshape', [kv, g.op('Concat', [cb, P, g.constI64([KV, dh])], { axis: 0 })]); // [cells·batch, pos, kv_head, d_head]
    qv = applyRotary(g, cfg, qv, from, attnType(cfg, layer));
    kv = applyRotary(g, cfg, kv, zero, attnType(cfg, layer));
    const qT = g.op('Transpose', [qv], { perm: [0, 2, 1, 3] }); // [cells·batch, head_index, n, d_head]
    const kT = g.op('Transpose', [ungroup(g, cfg, kv)], { perm: [0, 2, 3, 1] }); // [cells·batch, head_index, d_head, pos]
    scores = g.op('MatMul', [qT, kT]);
  } else {
    // The expanded products (rankOneAttention's comment): per-prompt t1..t4, per cell by GEMMs.
    const aqh = g.input('aqh', OnnxDType.FLOAT, [H, 'rows', dh]); // Aq [head_index, batch·pos, d_head]
    const akh = g.input('akh', OnnxDType.FLOAT, [H, 'rows', dh]); // Ak per query head
    const bq = g.input('bq', OnnxDType.FLOAT, [H, dh]);
    const t1 = g.input('t1', OnnxDType.FLOAT, ['batch', H, 'pos', 'pos']);
    const t3 = g.input('t3', OnnxDType.FLOAT, ['batch', H, 'pos']);
    const Bq = g.op('Reshape', [g.op('Slice', [bqk, zero, g.constI64([H * dh]), i1]), g.constI64([-1, H, dh])]); // [cells, head_index, d_head]
    const BkKv = g.op('Reshape', [g.op('Slice', [bqk, g.constI64([H * dh]), end, i1]), g.constI64([-1, 1, KV, dh])]);
    const Bk = g.op('Reshape', [ungroup(g, cfg, BkKv), g.constI64([-1, H, dh])]); // [cells, head_index, d_head]
    /** x [head_index, batch·pos, d_head] . y [cells, head_index, d_head] -> [cells, batch, head_index, pos]. */
    const perCell = (x: string, y: string) => {
      const prod = g.op('MatMul', [x, g.op('Transpose', [y], { perm: [1, 2, 0] })]); // [head_index, batch·pos, cells]
      return g.op('Transpose', [g.op('Reshape', [prod, g.op('Concat', [g.constI64([H]), batch, P, cells], { axis: 0 })])], { perm: [3, 1, 0, 2] });
    };
    const qb = perCell(aqh, Bk); // Aq_i . Bk [cells, batch, head_index, pos]
    const bk = perCell(akh, Bq); // Bq . Ak_j
    const dotH = (x: string, y: string) => g.op('ReduceSum', [g.op('Mul', [x, y]), g.constI64([-1])], { keepdims: 0 }); // [cells, head_index]
    const perHead = (t: string) => g.op('Reshape', [t, g.op('Concat', [cells, g.constI64([1, H, 1, 1])], { axis: 0 })]); // [cells, 1, head_index, 1, 1]
    const BB = perHead(dotH(Bq, Bk)), bB = perHead(dotH(bq, Bk));
    const five = (t: string, axes: number[]) => g.op('Unsqueeze', [t, g.constI64(axes)]);
    // Query-side terms at positions from.. ([.., n, 1]), key-side at every position ([.., 1, pos]).
    const aI = five(fromPos(alpha, i2), [2, 4]), aJ = five(alpha, [2, 3]); // [cells, batch, 1, n, 1], [cells, batch, 1, 1, pos]
    const invI = five(fromPos(inv, i2), [2, 4]), invJ = five(inv, [2, 3]);
    const inner = g.op('Add', [
      g.op('Add', [g.op('Unsqueeze', [g.op('Slice', [t1, from, end, i2]), zero]), g.op('Mul', [aJ, five(fromPos(qb, i3), [4])])]),
      g.op('Add', [g.op('Mul', [aI, five(bk, [3])]), g.op('Mul', [g.op('Mul', [aI, aJ]), BB])]),
    ]);
    const kSide = g.op('Mul', [invJ, g.op('Add', [five(t3, [0, 3]), g.op('Mul', [aJ, bB])])]);
    let s5 = g.op('Add', [g.op('Mul', [g.op('Mul', [invI, invJ]), inner]), kSide]);
    // Terms that depend on the query alone shift a query's scores equally, which the softmax
    // ignores; only a soft cap (tanh, before the softmax) needs them.
    if (capped(cfg)) {
      const bkh = g.input('bkh', OnnxDType.FLOAT, [H, dh]);
      const t2 = g.input('t2', OnnxDType.FLOAT, ['batch', H, 'pos']);
      const t4 = g.input('t4', OnnxDType.FLOAT, [H]);
      const Bb = perHead(dotH(Bq, bkh));
      const qSide = g.op('Mul', [invI, g.op('Add', [five(g.op('Slice', [t2, from, end, i2]), [0, 4]), g.op('Mul', [aI, Bb])])]);
      s5 = g.op('Add', [g.op('Add', [s5, qSide]), g.op('Reshape', [t4, g.constI64([1, 1, H, 1, 1])])]);
    }
    scores = g.op('Reshape', [s5, g.op('Concat', [cb, g.constI64([H]), n, P], { axis: 0 })]);
  }
  if (cfg.use_attn_scale) scores = g.op('Mul', [scores, g.constF([1 / cfg.attn_scale])]);
  const cap = cfg.attn_scores_soft_cap;
  if (cap !== null && cap > 0) scores = g.op('Mul', [g.op('Tanh', [g.op('Mul', [scores, g.constF([1 / cap])])]), g.constF([cap])]);
  // Causal mask: key j visible from query position i (absolute) when j <= i.
  const qpos = g.op('Range', [g.op('Squeeze', [from, zero]), g.op('Squeeze', [P, zero]), g.constI64([1], [])]);
  const kpos = g.op('Range', [g.constI64([0], []), g.op('Squeeze', [P, zero]), g.constI64([1], [])]);
  scores = g.op('Where', [g.op('LessOrEqual', [kpos, g.op('Unsqueeze', [qpos, i1])]), scores, g.constF([-Infinity])]);
  const pattern = g.op('Softmax', [scores], { axis: -1 });
  // c_ij = p_ij / s_j [cells·batch, head_index, n, pos]
  const c = g.op('Mul', [pattern, g.op('Reshape', [inv, g.op('Concat', [cb, g.constI64([1, 1]), P], { axis: 0 })])]);
  // sum_j c_ij Av_j W_O^h, one GEMM per prompt: [batch, cells·n, head_index·pos] x [batch, head_index·pos, d_model].
  const c5 = g.op('Reshape', [c, g.op('Concat', [cells, batch, g.constI64([H]), n, P], { axis: 0 })]);
  const cPrompt = g.op('Reshape', [g.op('Transpose', [c5], { perm: [1, 0, 3, 2, 4] }), g.op('Concat', [batch, g.constI64([-1]), g.op('Mul', [g.constI64([H]), P])], { axis: 0 })]);
  const out1 = g.op('Transpose', [g.op('Reshape', [g.op('MatMul', [cPrompt, avo]), g.op('Concat', [batch, cells, n, g.constI64([d])], { axis: 0 })])], { perm: [1, 0, 2, 3] }); // [cells, batch, n, d_model]
  // (sum_j c_ij alpha_j) Bv W_O^h: gain [cells, batch·n, head_index] x Bv W_O [cells, head_index, d_model].
  const gain = g.op('MatMul', [c, g.op('Reshape', [alpha, g.op('Concat', [cb, g.constI64([1]), P, g.constI64([1])], { axis: 0 })])]); // [cells·batch, head_index, n, 1]
  const gainT = g.op('Reshape', [g.op('Transpose', [g.op('Reshape', [gain, g.op('Concat', [cells, batch, g.constI64([H]), n], { axis: 0 })])], { perm: [0, 1, 3, 2] }), g.op('Concat', [cells, g.constI64([-1, H])], { axis: 0 })]);
  const bvH = g.op('Transpose', [g.op('Reshape', [ungroup(g, cfg, bv), g.constI64([-1, H, dh])])], { perm: [1, 0, 2] }); // [head_index, cells, d_head]
  const bvo = g.op('Transpose', [g.op('MatMul', [bvH, wo])], { perm: [1, 0, 2] }); // [cells, head_index, d_model]
  const out2 = g.op('Reshape', [g.op('MatMul', [gainT, bvo]), g.op('Concat', [cells, batch, n, g.constI64([d])], { axis: 0 })]);
  // resid_mid = resid_mid_L + (mlp_out_L + alpha u) + attn_out, at positions from..
  const resid = g.op('Add', [g.op('Unsqueeze', [fromPos(rmid, i1), zero]), g.op('Add', [g.op('Unsqueeze', [fromPos(mlp, i1), zero]), g.op('Mul', [fromPos(alpha4, i2), u])])]);
  const mid = g.op('Add', [resid, g.op('Add', [g.op('Add', [out1, out2]), co])]);
  g.op('Reshape', [mid, g.op('Concat', [cb, n, g.constI64([d])], { axis: 0 })], undefined, 'mid');
  g.output('mid', OnnxDType.FLOAT, ['rows', 'n', d]);
  return g;
}

/** Whether attention scores are soft-capped (tanh before the softmax). */
function capped(cfg: HookedTransformerConfig): boolean {
  return cfg.attn_scores_soft_cap !== null && cfg.attn_scores_soft_cap > 0;
}
