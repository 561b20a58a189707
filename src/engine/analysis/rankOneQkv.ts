/**
 * The first block's queries, keys and values after a rank-one change of its input residual, for
 * the single-neuron patching sweep. Patching neuron n of layer L changes the residual entering
 * block L+1 by alpha * w (alpha [batch, pos] = clean - corrupted activation of the neuron,
 * w = W_out[n] [d_model]). Block L+1 first normalizes (ln1) and projects; with x the corrupted
 * residual, xc / wc their centred versions (as is for RMS norms),
 *   ln1(x + alpha w) W + b = (xc W' + alpha wc W') / s' + b'      W' = diag(ln1.w) W, b' = ln1.b W + b
 *   s'^2 = (|xc|^2 + 2 alpha xc.wc + alpha^2 |wc|^2) / d_model + eps
 * so xc W' (once per prompt and position) and wc W' (once per neuron, one GEMM for all of them)
 * replace one d_model x (n_heads + 2 kv_heads) d_head product per cell, prompt and position: the
 * block then starts from the given hook_q / hook_k / hook_v (RunOptions.qkv). The same numbers as
 * the naive loop up to float32 rounding of the reassociated sums (the tests compare at 1e-5).
 */
import type { HookedTransformer } from '../model/hookedTransformer.js';
import { isPostNormArch } from '../model/config.js';
import { kvParamName } from '../model/paramSpecs.js';
import { GraphBuilder } from '../graph/builder.js';
import { OnnxDType } from '../graph/onnxProto.js';
import { f32, type F32 } from '../tensor/tensor.js';
import { cachedSession, matmul, runSession } from './onnxMath.js';

export interface RankOneQkv {
  /**
   * q, k, v [cells * batch, pos - from, heads, d_head] of positions [from, pos) for cells whose
   * neurons are `neurons` (indices into the directions) and whose alpha is alpha [cells, batch, pos].
   */
  qkv(neurons: readonly number[], alpha: F32, from: number): Promise<{ q: F32; k: F32; v: F32 }>;
}

/**
 * Prepares the rank-one path for block `layer` reading x [batch, pos, d_model] plus alpha * dirs[n]
 * (dirs [neurons, d_model]); null where it does not apply (no pre-norm ln1 of the four
 * TransformerLens kinds).
 */
export async function rankOneQkv(model: HookedTransformer, layer: number, x: F32, dirs: F32): Promise<RankOneQkv | null> {
  const cfg = model.cfg;
  const t = cfg.normalization_type;
  if (t === null || isPostNormArch(cfg) || layer >= cfg.n_layers) return null;
  const d = cfg.d_model, H = cfg.n_heads, dh = cfg.d_head;
  const KV = cfg.n_key_value_heads ?? H;
  const F = (H + 2 * KV) * dh;
  const [B, P] = x.dims as [number, number, number];
  const N = dirs.dims[0]!;
  const p = (name: string) => {
    const v = model.params.get(`blocks.${layer}.${name}`);
    if (!v) throw new Error(`model parameter blocks.${layer}.${name} is missing`);
    return v;
  };
  const centre = t === 'LN' || t === 'LNPre';
  const gamma = t === 'LN' || t === 'RMS' ? p('ln1.w').data : null;
  const beta = t === 'LN' ? p('ln1.b').data : null;
  // W' [d_model, F]: columns Q | K | V, each (head, d_head), rows scaled by ln1.w; b' [F].
  const W = new Float32Array(d * F);
  const bias = new Float32Array(F);
  let col = 0;
  for (const [w, b, heads] of [[p('attn.W_Q'), p('attn.b_Q'), H], [p(`attn.${kvParamName(cfg, 'W_K')}`), p(`attn.${kvParamName(cfg, 'b_K')}`), KV], [p(`attn.${kvParamName(cfg, 'W_V')}`), p(`attn.${kvParamName(cfg, 'b_V')}`), KV]] as const) {
    // w [heads, d_model, d_head], b [heads, d_head]
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < d; j++) {
        const g = gamma ? gamma[j]! : 1;
        const src = (h * d + j) * dh;
        const dst = j * F + col + h * dh;
        for (let e = 0; e < dh; e++) W[dst + e] = Math.fround(w.data[src + e]! * g);
      }
      for (let e = 0; e < dh; e++) {
        let s = b.data[h * dh + e]!;
        if (beta) for (let j = 0; j < d; j++) s += beta[j]! * w.data[(h * d + j) * dh + e]!;
        bias[col + h * dh + e] = s;
      }
    }
    col += heads * dh;
  }
  const centred = (t0: F32, rows: number): { c: F32; sq: Float32Array } => {
    const c = new Float32Array(rows * d);
    const sq = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let mean = 0;
      if (centre) {
        for (let j = 0; j < d; j++) mean += t0.data[r * d + j]!;
        mean /= d;
      }
      let s = 0;
      for (let j = 0; j < d; j++) {
        const v = Math.fround(t0.data[r * d + j]! - mean);
        c[r * d + j] = v;
        s += v * v;
      }
      sq[r] = s;
    }
    return { c: f32([rows, d], c), sq };
  };
  const xs = centred(x, B * P);
  const ws = centred(dirs, N);
  const Wt = f32([d, F], W);
  // wc W' for every direction [N, F] and xc W' for every prompt and position [B * P, F].
  const dirW = await matmul(model.runtime, ws.c, Wt);
  const xW = await matmul(model.runtime, xs.c, Wt);
  const rt = model.runtime;
  const session = cachedSession(rt, `rankOneQkv/${d}/${H}/${KV}/${dh}/${cfg.eps}`, () => {
    const g = new GraphBuilder('rank_one_qkv');
    const A = g.input('a', OnnxDType.FLOAT, ['batch', 'pos', F]); // xc W'
    const Bn = g.input('bn', OnnxDType.FLOAT, ['cells', F]); // wc W'
    const alpha = g.input('alpha', OnnxDType.FLOAT, ['cells', 'batch', 'pos']);
    const xx = g.input('xx', OnnxDType.FLOAT, ['batch', 'pos']);
    const xw = g.input('xw', OnnxDType.FLOAT, ['cells', 'batch', 'pos']);
    const ww = g.input('ww', OnnxDType.FLOAT, ['cells', 1, 1]);
    const bb = g.input('bias', OnnxDType.FLOAT, [F]);
    // s' [cells, batch, pos, 1]
    const two = g.constF([2]);
    const ms = g.op('Div', [g.op('Add', [g.op('Add', [xx, g.op('Mul', [g.op('Mul', [two, alpha]), xw])]), g.op('Mul', [g.op('Mul', [alpha, alpha]), ww])]), g.constF([d])]);
    const s = g.op('Unsqueeze', [g.op('Sqrt', [g.op('Add', [ms, g.constF([cfg.eps])])]), g.constI64([3])]);
    // (A + alpha Bn) / s' + b'  [cells, batch, pos, F]
    const bn4 = g.op('Unsqueeze', [Bn, g.constI64([1, 2])]);
    const num = g.op('Add', [g.op('Unsqueeze', [A, g.constI64([0])]), g.op('Mul', [g.op('Unsqueeze', [alpha, g.constI64([3])]), bn4])]);
    const y = g.op('Add', [g.op('Div', [num, s]), bb]);
    // Split Q | K | V and flatten [cells, batch, pos] (the caller views them as [cells * batch, pos, heads, d_head]).
    const parts = g.opN('Split', [y, g.constI64([H * dh, KV * dh, KV * dh])], 3, { axis: -1 });
    g.op('Reshape', [parts[0]!, g.constI64([-1, H, dh])], undefined, 'q');
    g.op('Reshape', [parts[1]!, g.constI64([-1, KV, dh])], undefined, 'k');
    g.op('Reshape', [parts[2]!, g.constI64([-1, KV, dh])], undefined, 'v');
    for (const [o, heads] of [['q', H], ['k', KV], ['v', KV]] as const) g.output(o, OnnxDType.FLOAT, ['rows', heads, dh]);
    return g;
  });
  /** Positions [from, pos) of a [batch, pos, ...] array with `inner` values per position. */
  const cut = (data: Float32Array, inner: number, from: number): Float32Array => {
    if (from === 0) return data;
    const n = P - from;
    const out = new Float32Array(B * n * inner);
    for (let b = 0; b < B; b++) out.set(data.subarray((b * P + from) * inner, (b * P + P) * inner), b * n * inner);
    return out;
  };
  const byFrom = new Map<number, { a: F32; xx: F32; xcT: F32 }>();
  return {
    async qkv(neurons, alpha, from) {
      const n = P - from;
      const C = neurons.length;
      let pre = byFrom.get(from);
      if (!pre) {
        pre = { a: f32([B, n, F], cut(xW.data, F, from)), xx: f32([B, n], cut(xs.sq, 1, from)), xcT: f32([d, B * n], transpose(cut(xs.c.data, d, from), B * n, d)) };
        byFrom.set(from, pre);
      }
      const bn = new Float32Array(C * F);
      const wc = new Float32Array(C * d);
      const ww = new Float32Array(C);
      neurons.forEach((k, c) => {
        bn.set(dirW.data.subarray(k * F, (k + 1) * F), c * F);
        wc.set(ws.c.data.subarray(k * d, (k + 1) * d), c * d);
        ww[c] = ws.sq[k]!;
      });
      // xc . wc [cells, batch, pos - from]
      const xwT = await matmul(rt, f32([C, d], wc), pre.xcT);
      const al = f32([C, B, n], cut2(alpha, C, B, P, from));
      const out = await runSession(rt, await session, { a: pre.a, bn: f32([C, F], bn), alpha: al, xx: pre.xx, xw: f32([C, B, n], xwT.data), ww: f32([C, 1, 1], ww), bias: f32([F], bias) }, ['q', 'k', 'v']);
      const view = (t: F32, heads: number) => f32([C * B, n, heads, dh], t.data);
      return { q: view(out['q']!, H), k: view(out['k']!, KV), v: view(out['v']!, KV) };
    },
  };
}

/** [rows, cols] -> [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  return out;
}

/** alpha [C, B, P] -> positions [from, P). */
function cut2(alpha: F32, C: number, B: number, P: number, from: number): Float32Array {
  if (from === 0) return alpha.data;
  const n = P - from;
  const out = new Float32Array(C * B * n);
  for (let r = 0; r < C * B; r++) out.set(alpha.data.subarray(r * P + from, r * P + P), r * n);
  return out;
}
