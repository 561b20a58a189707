/**
 * Attention on the normalized input x [batch, pos, d_model] -> attn_out [batch, pos, d_model]
 * (the caller hooks it as hook_attn_out), every hook with TransformerLens's name and axis order:
 *   hook_q [batch, pos, head_index, d_head]; hook_k / hook_v [batch, pos, kv_head, d_head]
 *     (kv_head = n_key_value_heads under grouped-query attention, as TransformerLens caches them;
 *     each key/value head serves n_heads / kv_head consecutive query heads, repeat_interleave);
 *   q/k norm (Qwen3, Gemma 3: per head; OLMo-2, OLMoE: over the whole projection), after hook_q /
 *     hook_k and before rotary (then OLMoE's clamp of q, k and v to ±clip_qkv): attn.q_norm.hook_scale / hook_normalized and attn.k_norm.* with
 *     TransformerLens's shapes (per head: [batch·pos·head_index, 1] and [batch·pos·head_index,
 *     d_head], as it flattens before its RMSNorm; whole: [batch, pos, 1] and
 *     [batch, pos, (head_index d_head)]);
 *   rotary models: hook_rot_q / hook_rot_k, q and k with the rotary embedding applied to their
 *     first rotary_dim dims (GPT-NeoX halves or GPT-J adjacent pairs; Llama 3 NTK-by-parts);
 *   hook_attn_scores / hook_pattern [batch, head_index, query_pos, key_pos] (q·k / attn_scale, or
 *     unscaled without use_attn_scale; optional softcap c·tanh(s / c); causal mask, a sliding
 *     window on local layers);
 *   hook_z [batch, pos, head_index, d_head]; hook_result [batch, pos, head_index, d_model] when asked.
 */
import { attnType, qkNorm, type HookedTransformerConfig } from '../../model/config.js';
import { kvParamName } from '../../model/paramSpecs.js';
import { OnnxDType } from '../onnxProto.js';
import type { GraphBuilder } from '../builder.js';
import { dimOf, hookOr, lastPosition, SLICE_END, type Emitter } from './emitter.js';

export interface AttentionOptions {
  layer: number;
  /** Only the last query row is computed (keys and values still cover every position); no hooks after q/k/v. */
  lastPos: boolean;
  /** Keys / values of earlier positions, [batch, past, kv_head, d_head] (hook_k / hook_v of a cached run). */
  past: { k: string; v: string } | null;
  /**
   * hook_q / hook_k / hook_v values given ([batch, pos, head_index | kv_head, d_head]) instead of
   * projected from x (which is then unused): a patching sweep that knows them cheaply (a
   * rank-one change of the residual) skips ln1 and the projections.
   */
  given?: { q: string; k: string; v: string };
  /** Compute per-head results (hook_result), as TransformerLens's use_attn_result. */
  useAttnResult: boolean;
  /** Per-head results were intervened on, so attn_out must be their sum. */
  resultIntervened: boolean;
  /**
   * Q, K, V from one GEMM on W_QKV [d_model, (head_index + 2·kv_head)·d_head] (columns Q|K|V,
   * head, d_head) and b_QKV, packed in the graph, or fed pre-packed (`W`, `b`): the training
   * graph's choice (every reshape has a constant target, which autodiff's shape inference needs).
   */
  packedQKV?: { W: string; b: string } | 'pack';
}

/**
 * Rotary frequencies [rotary_dim] in TransformerLens's layout (each frequency twice: halves
 * "(2 d)" or adjacent "(d 2)"), float32 as TransformerLens computes them (angle = pos / freq).
 */
export function rotaryFreqs(cfg: HookedTransformerConfig, type: 'global' | 'local' = 'global'): Float32Array {
  const rd = cfg.rotary_dim!;
  const half = rd / 2;
  // Gemma 3: local layers have their own base; global ones may be linearly scaled.
  const local = type === 'local';
  const base = local && cfg.rotary_base_local !== null ? cfg.rotary_base_local : cfg.rotary_base;
  const linear = local ? 1 : cfg.rotary_scaling_factor;
  const f = new Float32Array(half);
  for (let d = 0; d < half; d++) {
    if (cfg.use_NTK_by_parts_rope) {
      // Llama 3: low frequencies slowed by `factor`, high kept, a smooth blend between.
      const invFreq = Math.fround(1 / Math.fround(Math.pow(base, Math.fround((2 * d) / rd))));
      const factor = cfg.NTK_by_parts_factor, lo = cfg.NTK_by_parts_low_freq_factor, hi = cfg.NTK_by_parts_high_freq_factor, old = cfg.NTK_original_ctx_len;
      const wavelen = (2 * Math.PI) / invFreq;
      let inv = wavelen > old / lo ? invFreq / factor : invFreq;
      if (!(wavelen < old / hi) && !(wavelen > old / lo)) {
        const smooth = (old / wavelen - lo) / (hi - lo);
        inv = ((1 - smooth) * inv) / factor + smooth * inv;
      }
      f[d] = Math.fround(1 / Math.fround(inv));
    } else {
      f[d] = Math.fround(Math.pow(base, Math.fround(d / half)));
      if (linear !== 1) f[d] = Math.fround(f[d]! * linear);
    }
  }
  const out = new Float32Array(rd);
  for (let i = 0; i < rd; i++) out[i] = cfg.rotary_adjacent_pairs ? f[i >> 1]! : f[i % half]!;
  return out;
}

/**
 * R [rotary_dim, rotary_dim] with x R = TransformerLens's rotate_every_two(x): halves map
 * (a, b) -> (-b, a); adjacent pairs map (x0, x1) -> (-x1, x0). A signed permutation, so the
 * MatMul is exact, and autodiff needs no rule beyond MatMul's.
 */
function rotationMatrix(rd: number, adjacent: boolean): number[] {
  const R = new Array<number>(rd * rd).fill(0);
  const n = rd / 2;
  for (let j = 0; j < rd; j++) {
    if (adjacent) {
      if (j % 2 === 0) R[(j + 1) * rd + j] = -1;
      else R[(j - 1) * rd + j] = 1;
    } else if (j < n) R[(j + n) * rd + j] = -1;
    else R[(j - n) * rd + j] = 1;
  }
  return R;
}

/** x [batch, n, heads, d_head] at positions start.. -> rotary applied to its first rotary_dim dims. */
export function applyRotary(g: GraphBuilder, cfg: HookedTransformerConfig, x: string, start: string, type: 'global' | 'local'): string {
  const rd = cfg.rotary_dim!;
  const dh = cfg.d_head;
  const n = dimOf(g, x, 1);
  const pos = g.op('Cast', [g.op('Range', [g.op('Squeeze', [start, g.constI64([0])]), g.op('Squeeze', [g.op('Add', [start, n]), g.constI64([0])]), g.constI64([1], [])])], { to: OnnxDType.FLOAT });
  // angles [n, 1, rotary_dim] = pos / freq
  const angles = g.op('Div', [g.op('Reshape', [pos, g.constI64([-1, 1, 1])]), g.constF([...rotaryFreqs(cfg, type)], [rd])]);
  const xr = rd === dh ? x : g.op('Slice', [x, g.constI64([0]), g.constI64([rd]), g.constI64([3])]);
  const flip = g.op('MatMul', [xr, g.constF(rotationMatrix(rd, cfg.rotary_adjacent_pairs), [rd, rd])]);
  const rotated = g.op('Add', [g.op('Mul', [xr, g.op('Cos', [angles])]), g.op('Mul', [flip, g.op('Sin', [angles])])]);
  if (rd === dh) return rotated;
  return g.op('Concat', [rotated, g.op('Slice', [x, g.constI64([rd]), g.constI64([dh]), g.constI64([3])])], { axis: 3 });
}

/** [batch, pos, kv_head, d_head] -> [batch, pos, head_index, d_head], each kv head repeated n_heads / kv_head times. */
export function ungroup(g: GraphBuilder, cfg: HookedTransformerConfig, x: string): string {
  const kv = cfg.n_key_value_heads;
  if (kv === null || kv === cfg.n_heads) return x;
  const rep = cfg.n_heads / kv;
  const e = g.op('Expand', [g.op('Unsqueeze', [x, g.constI64([3])]), g.constI64([1, 1, 1, rep, 1])]);
  return g.op('Reshape', [e, g.constI64([0, 0, cfg.n_heads, cfg.d_head])]);
}

/**
 * ALiBi (BLOOM) as TransformerLens builds it: bias [head_index, query_pos, key_pos] =
 * m_h · min(j - i, 0) for query position i and key position j, with slopes
 * m_h = 2^(-8 (h + 1) / n_heads) (TransformerLens's create_alibi_multipliers; HF's slopes are the
 * same when n_heads is a power of two). Future keys get 0 (the causal mask removes them).
 */
export function alibiSlopes(nHeads: number): Float32Array {
  const start = 2 ** (-8 / nHeads);
  return Float32Array.from({ length: nHeads }, (_, h) => start * start ** h);
}

function alibiBias(g: GraphBuilder, cfg: HookedTransformerConfig, qi: string, kpos: string): string {
  // rel [query_pos, key_pos] = min(j - i, 0) as float; slopes [head_index, 1, 1].
  const rel = g.op('Cast', [g.op('Min', [g.op('Sub', [kpos, qi]), g.constI64([0], [])])], { to: OnnxDType.FLOAT });
  const slopes = g.constF([...alibiSlopes(cfg.n_heads)], [cfg.n_heads, 1, 1]);
  return g.op('Mul', [slopes, g.op('Unsqueeze', [rel, g.constI64([0])])]);
}

/**
 * TransformerLens's q/k RMSNorm on x [batch, n, heads, d_head] (n: the positions it covers),
 * returned in that shape: scale = sqrt(mean(x^2) + eps), normalized = x / scale, times
 * `${P}.attn.${which}.w`. The mean runs over each head's d_head features ('head') or over all
 * heads' features of a position ('whole'); the hooks see TransformerLens's flattened views.
 * `plain`: no hooks (prefix blocks, whose keys span the cached positions too).
 */
export function emitQkNorm(e: Emitter, P: string, which: 'q_norm' | 'k_norm', x: string, heads: number, plain: boolean): string {
  const { g, cfg } = e;
  const kind = qkNorm(cfg);
  if (kind === null) return x;
  const dh = cfg.d_head;
  const hook = (name: string, v: string) => hookOr(e, plain, `${P}.attn.${which}.${name}`, v);
  const shape4 = g.op('Shape', [x]);
  // rows [R, F]: R = batch·n·heads, F = d_head (per head); R = batch·n, F = heads·d_head (whole).
  const F = kind === 'head' ? dh : heads * dh;
  const rows = kind === 'head' ? g.op('Reshape', [x, g.constI64([-1, dh])]) : g.op('Reshape', [x, g.constI64([0, 0, F])]);
  const scale = hook('hook_scale', g.op('Sqrt', [g.op('Add', [g.op('ReduceMean', [g.op('Mul', [rows, rows])], { axes: [-1], keepdims: 1 }), g.constF([cfg.eps])])]));
  const normalized = hook('hook_normalized', g.op('Div', [rows, scale]));
  return g.op('Reshape', [g.op('Mul', [normalized, e.w(`${P}.attn.${which}.w`)]), shape4]);
}

export function emitAttention(e: Emitter, x: string, o: AttentionOptions): string {
  const { g, cfg } = e;
  const P = `blocks.${o.layer}`;
  const H = cfg.n_heads, dh = cfg.d_head, d = cfg.d_model;
  const KV = cfg.n_key_value_heads ?? H;
  const hk = (name: string, value: string) => hookOr(e, o.lastPos, `${P}.${name}`, value);

  // q, k, v = x @ W[h] + b[h], each as one MatMul batched over heads on the weights as
  // TransformerLens stores them: [1, batch·pos, d_model] x W [heads, d_model, d_head] ->
  // [heads, batch·pos, d_head]. No packed W_QKV copy (85 MB for GPT-2 small), and measured as
  // fast as one packed GEMM at 64 tokens (2.03 vs 1.99 ms).
  if (o.lastPos && !o.packedQKV && !o.given && KV === H && cfg.positional_embedding_type !== 'rotary' && qkNorm(cfg) === null && cfg.clip_qkv === null) return queryPathAttention(e, x, o);
  const xs = g.op('Reshape', [x, g.constI64([1, -1, d])]);
  const bp = g.op('Slice', [g.op('Shape', [x]), g.constI64([0]), g.constI64([2])]);
  const project = (W: string, b: string, heads: number): string => {
    const y = g.op('Add', [g.op('MatMul', [xs, e.w(`${P}.attn.${W}`)]), e.w(`${P}.attn.${b}`, [heads, 1, dh])]);
    return g.op('Reshape', [g.op('Transpose', [y], { perm: [1, 0, 2] }), g.op('Concat', [bp, g.constI64([heads, dh])], { axis: 0 })]);
  };
  let qv: string, kv: string, vv: string;
  if (o.given) {
    ({ q: qv, k: kv, v: vv } = o.given);
  } else if (o.packedQKV) {
    let W: string, b: string;
    if (o.packedQKV === 'pack') {
      const wcols = (n: string, heads: number) => g.op('Reshape', [g.op('Transpose', [e.w(`${P}.attn.${n}`)], { perm: [1, 0, 2] }), g.constI64([d, heads * dh])]);
      W = g.op('Concat', [wcols('W_Q', H), wcols(kvParamName(cfg, 'W_K'), KV), wcols(kvParamName(cfg, 'W_V'), KV)], { axis: 1 });
      const bflat = (n: string, heads: number) => g.op('Reshape', [e.w(`${P}.attn.${n}`), g.constI64([heads * dh])]);
      b = g.op('Concat', [bflat('b_Q', H), bflat(kvParamName(cfg, 'b_K'), KV), bflat(kvParamName(cfg, 'b_V'), KV)], { axis: 0 });
    } else {
      ({ W, b } = o.packedQKV);
    }
    const qkv = g.op('Add', [g.op('MatMul', [x, W]), b]); // [batch, pos, (head_index + 2·kv_head)·d_head]
    const parts = g.opN('Split', [qkv, g.constI64([H * dh, KV * dh, KV * dh])], 3, { axis: -1 });
    qv = g.op('Reshape', [parts[0]!, g.constI64([0, 0, H, dh])]);
    kv = g.op('Reshape', [parts[1]!, g.constI64([0, 0, KV, dh])]);
    vv = g.op('Reshape', [parts[2]!, g.constI64([0, 0, KV, dh])]);
  } else {
    qv = project('W_Q', 'b_Q', H);
    kv = project(kvParamName(cfg, 'W_K'), kvParamName(cfg, 'b_K'), KV);
    vv = project(kvParamName(cfg, 'W_V'), kvParamName(cfg, 'b_V'), KV);
  }
  let q = e.hook(`${P}.attn.hook_q` as never, qv);
  let k = e.hook(`${P}.attn.hook_k` as never, kv);
  let v = e.hook(`${P}.attn.hook_v` as never, vv);
  // prefix: keys / values of the earlier positions come in, [batch, past + pos, kv_head, d_head].
  const past = o.past ? dimOf(g, o.past.k, 1) : null;
  if (o.past) {
    // The cached run's keys and values may come once per prompt ([prompts, past, ...]) for a
    // batch of cells x prompts rows (row c·prompts + b reads prompt b): tiled here, one layer at
    // a time, rather than fed as n_layers tiled copies.
    const reps = g.op('Concat', [g.op('Div', [dimOf(g, k, 0), dimOf(g, o.past.k, 0)]), g.constI64([1, 1, 1])], { axis: 0 });
    k = g.op('Concat', [g.op('Tile', [o.past.k, reps]), k], { axis: 1 });
    v = g.op('Concat', [g.op('Tile', [o.past.v, reps]), v], { axis: 1 });
  }
  // q/k norm on every position (keys of a prefix too: they come in as hook_k, before the norm).
  q = emitQkNorm(e, P, 'q_norm', q, H, o.past !== null);
  k = emitQkNorm(e, P, 'k_norm', k, KV, o.past !== null);
  if (cfg.clip_qkv !== null) {
    // OLMoE: q, k and v clamped after the projections and q/k norms, before rotary (no hook sees
    // the clamped values before hook_rot_q / hook_rot_k, as in TransformerLens).
    const lo = g.constF([-cfg.clip_qkv], []), hi = g.constF([cfg.clip_qkv], []);
    q = g.op('Clip', [q, lo, hi]);
    k = g.op('Clip', [k, lo, hi]);
    v = g.op('Clip', [v, lo, hi]);
  }
  const zero = g.constI64([0]);
  if (cfg.positional_embedding_type === 'rotary') {
    // Queries sit at positions past.., keys (cached unrotated, as hook_k) at 0..
    const rotPlain = o.past !== null;
    q = hookOr(e, rotPlain, `${P}.attn.hook_rot_q`, applyRotary(g, cfg, q, past ?? zero, attnType(cfg, o.layer)));
    k = hookOr(e, rotPlain, `${P}.attn.hook_rot_k`, applyRotary(g, cfg, k, zero, attnType(cfg, o.layer)));
  }

  // scores [batch, head_index, query_pos, key_pos] = q . k / sqrt(d_head), masked -> -inf.
  // lastPos: one query row [batch, head_index, 1, key_pos]; the last query sees every key, so no
  // causal mask (a sliding window still masks keys older than the window).
  const qT = g.op('Transpose', [o.lastPos ? lastPosition(g, q) : q], { perm: [0, 2, 1, 3] });
  const kT = g.op('Transpose', [ungroup(g, cfg, k)], { perm: [0, 2, 3, 1] });
  let scores = g.op('MatMul', [qT, kT]);
  // Divided by attn_scale (sqrt(d_head), or Gemma 2's sqrt(query_pre_attn_scalar)); GPT-Neo does not scale.
  if (cfg.use_attn_scale) scores = g.op('Mul', [scores, g.constF([1 / cfg.attn_scale])]);
  const cap = cfg.attn_scores_soft_cap;
  if (cap !== null && cap > 0) scores = g.op('Mul', [g.op('Tanh', [g.op('Mul', [scores, g.constF([1 / cap])])]), g.constF([cap])]);
  const local = attnType(cfg, o.layer) === 'local';
  const alibi = cfg.positional_embedding_type === 'alibi';
  const masked = !o.lastPos || local;
  if (masked || alibi) {
    // Absolute positions: queries qi [query_pos, 1], keys kpos [key_pos].
    const total = dimOf(g, k, 1);
    const first = o.lastPos ? g.op('Sub', [total, g.constI64([1])]) : (past ?? zero);
    const qpos = g.op('Range', [g.op('Squeeze', [first, zero]), g.op('Squeeze', [total, zero]), g.constI64([1], [])]);
    const kpos = g.op('Range', [g.constI64([0], []), g.op('Squeeze', [total, zero]), g.constI64([1], [])]);
    const qi = g.op('Unsqueeze', [qpos, g.constI64([1])]);
    // BLOOM: ALiBi's per-head linear penalty on distance, added before the causal mask (as TransformerLens).
    if (alibi) scores = g.op('Add', [scores, alibiBias(g, cfg, qi, kpos)]);
    if (masked) {
      // key j is visible from query i when j <= i and, on local layers, j > i - window.
      let mask = g.op('LessOrEqual', [kpos, qi]);
      if (local) mask = g.op('And', [mask, g.op('Greater', [kpos, g.op('Sub', [qi, g.constI64([cfg.window_size!], [])])])]);
      scores = g.op('Where', [mask, scores, g.constF([-Infinity])]);
    }
  }
  const attnScores = hk('attn.hook_attn_scores', scores);
  const pattern = hk('attn.hook_pattern', g.op('Softmax', [attnScores], { axis: -1 }));

  // z [batch, pos, head_index, d_head] = pattern @ v
  const vT = g.op('Transpose', [ungroup(g, cfg, v)], { perm: [0, 2, 1, 3] });
  const z = hk('attn.hook_z', g.op('Transpose', [g.op('MatMul', [pattern, vT])], { perm: [0, 2, 1, 3] }));

  const zFlat = g.op('Reshape', [z, g.constI64([0, 0, H * dh])]);
  const plainOut = () => g.op('Add', [g.op('MatMul', [zFlat, e.w(`${P}.attn.W_O`, [H * dh, d])]), e.w(`${P}.attn.b_O`)]);
  if (!o.useAttnResult || o.lastPos) return plainOut();
  // result [batch, pos, head_index, d_model] = z[b,p,h,:] @ W_O[h], computed as head_index GEMMs
  // of [batch·pos, d_head] x [d_head, d_model] (one per head) rather than batch·head tiny ones.
  const zH = g.op('Transpose', [g.op('Reshape', [z, g.constI64([-1, H, dh])])], { perm: [1, 0, 2] }); // [head_index, batch·pos, d_head]
  const resH = g.op('MatMul', [zH, e.w(`${P}.attn.W_O`)]); // [head_index, batch·pos, d_model]
  const shape = g.op('Concat', [dimOf(g, z, 0), dimOf(g, z, 1), g.constI64([H, d])], { axis: 0 });
  const result = e.hook(`${P}.attn.hook_result` as never, g.op('Reshape', [g.op('Transpose', [resH], { perm: [1, 0, 2] }), shape]));
  // TransformerLens sums the per-head results when they are used; we only need to when an
  // intervention may have changed them, otherwise the single GEMM gives the same attn_out.
  return o.resultIntervened ? g.op('Add', [g.op('ReduceSum', [result, g.constI64([2])], { keepdims: 0 }), e.w(`${P}.attn.b_O`)]) : plainOut();
}

/**
 * The last query row's attention without the keys and values of the computed positions
 * (lastPos blocks: the patching sweeps' last layer). With x the normalized input [batch, n, d_model]
 * and q the last position's query, per head
 *   q . k_j = q . (x_j W_K + b_K) = x_j . (W_K q) + q . b_K
 *   sum_j p_j v_j = (sum_j p_j x_j) W_V + (sum_j p_j) b_V
 * so W_K q [batch, head_index, d_model] replaces n rows of keys and the pattern-weighted mean of
 * x replaces n rows of values: 2 d_model x d_head multiply-adds per head and row of the batch
 * instead of 2 n of them (n = 6 positions: 5x fewer). The same numbers as the plain path up to
 * float32 rounding of the reassociated sums. Keys and values of a prefix (`past`) are used as
 * given. Shapes are chosen so that every product is a GEMM over all rows or one per row, never
 * one per row and head. Only for multi-head attention without rotary embeddings, q/k norms or
 * OLMoE's clamp (which act on k and v themselves).
 */
function queryPathAttention(e: Emitter, x: string, o: AttentionOptions): string {
  const { g, cfg } = e;
  const P = `blocks.${o.layer}`;
  const H = cfg.n_heads, dh = cfg.d_head, d = cfg.d_model;
  const zero = g.constI64([0]);
  const xLast = g.op('Squeeze', [lastPosition(g, x), g.constI64([1])]); // [batch, d_model]
  // q [batch, head_index·d_head] = x_last W_Q + b_Q as one GEMM (W_Q [head_index, d_model, d_head] viewed as [d_model, head_index·d_head]).
  const WQ = g.op('Reshape', [g.op('Transpose', [e.w(`${P}.attn.W_Q`)], { perm: [1, 0, 2] }), g.constI64([d, H * dh])]);
  const q = g.op('Add', [g.op('MatMul', [xLast, WQ]), e.w(`${P}.attn.b_Q`, [H * dh])]);
  const qB = g.op('Reshape', [q, g.constI64([-1, H, dh])]); // [batch, head_index, d_head]
  const qH = g.op('Transpose', [qB], { perm: [1, 0, 2] }); // [head_index, batch, d_head]
  // W_K q [batch, head_index, d_model] (one GEMM per head) and q . b_K [batch, head_index, 1].
  const qK = g.op('Transpose', [g.op('MatMul', [qH, g.op('Transpose', [e.w(`${P}.attn.W_K`)], { perm: [0, 2, 1] })])], { perm: [1, 0, 2] });
  const qb = g.op('ReduceSum', [g.op('Mul', [qB, e.w(`${P}.attn.b_K`)]), g.constI64([-1])], { keepdims: 1 });
  // Scores of the computed positions [batch, head_index, n] (one GEMM per row).
  let scores = g.op('Add', [g.op('MatMul', [qK, g.op('Transpose', [x], { perm: [0, 2, 1] })]), qb]);
  let vPast: string | null = null;
  let m: string | null = null;
  if (o.past) {
    // Keys and values of the prefix as given ([rows, m, head_index, d_head]), tiled to the batch as the plain path does.
    const reps = g.op('Concat', [g.op('Div', [dimOf(g, x, 0), dimOf(g, o.past.k, 0)]), g.constI64([1, 1, 1])], { axis: 0 });
    const kPast = g.op('Transpose', [g.op('Tile', [o.past.k, reps])], { perm: [0, 2, 1, 3] }); // [batch, head_index, m, d_head]
    vPast = g.op('Transpose', [g.op('Tile', [o.past.v, reps])], { perm: [0, 2, 1, 3] });
    const sPast = g.op('ReduceSum', [g.op('Mul', [g.op('Unsqueeze', [qB, g.constI64([2])]), kPast]), g.constI64([-1])], { keepdims: 0 }); // [batch, head_index, m]
    scores = g.op('Concat', [sPast, scores], { axis: 2 });
    m = dimOf(g, o.past.k, 1);
  }
  if (cfg.use_attn_scale) scores = g.op('Mul', [scores, g.constF([1 / cfg.attn_scale])]);
  const cap = cfg.attn_scores_soft_cap;
  if (cap !== null && cap > 0) scores = g.op('Mul', [g.op('Tanh', [g.op('Mul', [scores, g.constF([1 / cap])])]), g.constF([cap])]);
  const local = attnType(cfg, o.layer) === 'local';
  if (local || cfg.positional_embedding_type === 'alibi') {
    // The last query sits at total - 1 (total = m + n); keys at 0..total-1.
    const total = m ? g.op('Add', [m, dimOf(g, x, 1)]) : dimOf(g, x, 1);
    const qpos = g.op('Range', [g.op('Squeeze', [g.op('Sub', [total, g.constI64([1])]), zero]), g.op('Squeeze', [total, zero]), g.constI64([1], [])]);
    const kpos = g.op('Range', [g.constI64([0], []), g.op('Squeeze', [total, zero]), g.constI64([1], [])]);
    const qi = g.op('Unsqueeze', [qpos, g.constI64([1])]);
    // ALiBi's bias [head_index, 1, total] -> [head_index, total].
    if (cfg.positional_embedding_type === 'alibi') scores = g.op('Add', [scores, g.op('Squeeze', [alibiBias(g, cfg, qi, kpos), g.constI64([1])])]);
    if (local) scores = g.op('Where', [g.op('Greater', [kpos, g.op('Sub', [qi, g.constI64([cfg.window_size!], [])])]), scores, g.constF([-Infinity])]);
  }
  const pattern = g.op('Softmax', [scores], { axis: -1 }); // [batch, head_index, m + n]
  let pCur = pattern;
  let zPast: string | null = null;
  if (vPast && m) {
    const pPast = g.op('Slice', [pattern, g.constI64([0]), m, g.constI64([2])]);
    pCur = g.op('Slice', [pattern, m, g.constI64([SLICE_END]), g.constI64([2])]);
    zPast = g.op('ReduceSum', [g.op('Mul', [g.op('Unsqueeze', [pPast, g.constI64([3])]), vPast]), g.constI64([2])], { keepdims: 0 }); // [batch, head_index, d_head]
  }
  // z [batch, head_index, d_head] = (sum_j p_j x_j) W_V + (sum_j p_j) b_V (+ the prefix's part).
  const pooled = g.op('Transpose', [g.op('MatMul', [pCur, x])], { perm: [1, 0, 2] }); // [head_index, batch, d_model]
  const zH = g.op('MatMul', [pooled, e.w(`${P}.attn.W_V`)]); // [head_index, batch, d_head]
  let z = g.op('Add', [g.op('Transpose', [zH], { perm: [1, 0, 2] }), g.op('Mul', [g.op('ReduceSum', [pCur, g.constI64([-1])], { keepdims: 1 }), e.w(`${P}.attn.b_V`)])]);
  if (zPast) z = g.op('Add', [zPast, z]);
  const zFlat = g.op('Reshape', [z, g.constI64([-1, 1, H * dh])]); // [batch, 1, head_index·d_head]
  return g.op('Add', [g.op('MatMul', [zFlat, e.w(`${P}.attn.W_O`, [H * dh, d])]), e.w(`${P}.attn.b_O`)]);
}
