/**
 * The unembedding W_U [d_model, d_vocab_out] of a model, whether it is a tensor of its own or
 * tied to the embedding.
 *
 * A tied checkpoint (GPT-2, Llama 3.2 1B, Qwen 2.5, OPT, ...) stores one matrix for both ends:
 * TransformerLens copies it into W_E [d_vocab, d_model] and, transposed, into W_U, and processes
 * the two apart (fold_ln scales W_U's rows by ln_final.w and centres its columns; center_unembed
 * centres its rows; center_writing_weights centres W_E's rows). Holding that W_U as a tensor of
 * its own would add 5-21% to a 1-2B model's weights, so MechLens keeps it as factors of the
 * stored (processed) W_E:
 *
 *   W_U[d, v] = scale[d] · W_E[v, d] + Σ_k P[d, k] · Q[k, v]
 *
 * with scale [d_model] (ln_final.w folded in; absent = ones), P [d_model, K] and Q [K, d_vocab_out]
 * (K <= 3 rank-one corrections: the per-token mean that center_writing_weights took out of W_E,
 * fold_ln's centring over d_model and center_unembed's per-d_model means). weights/process.ts
 * keeps the factors exact under every processing step; the graph computes logits as
 * (x·scale) W_Eᵀ (a Gemm with transB, so no transposed copy exists, not even in onnxruntime)
 * + (x P) Q + b_U. Readers that need W_U's values call unembedColumns (a few columns) or
 * unembedMatrix (all of it, a W_U-sized copy: analyses of small models only).
 *
 * The factors live in the params Map under the names below (not TransformerLens names): they
 * mark a tied model, and travel wherever the params go.
 */
import { f32, type F32 } from '../tensor/tensor.js';
import type { Params } from './params.js';

/** scale [d_model] (absent: ones). */
export const TIED_SCALE = 'unembed.tied.scale';
/** P [d_model, K]. */
export const TIED_P = 'unembed.tied.P';
/** Q [K, d_vocab_out]; its presence marks a tied unembedding. */
export const TIED_Q = 'unembed.tied.Q';

/** Whether a params name is one of the tied unembedding's factors (not a TransformerLens param). */
export function isTiedFactorName(name: string): boolean {
  return name === TIED_SCALE || name === TIED_P || name === TIED_Q;
}

/** The factors of a tied W_U, read from params. */
export interface TiedUnembed {
  /** The stored embedding [d_vocab, d_model] (d_vocab == d_vocab_out). */
  W_E: F32;
  /** [d_model], or null for ones. */
  scale: Float32Array | null;
  /** [d_model, K]. */
  P: F32;
  /** [K, d_vocab_out]. */
  Q: F32;
  d: number;
  V: number;
  K: number;
}

/** Whether the model's W_U is tied to W_E (kept as factors, see the file header). */
export function isTiedUnembed(params: ReadonlyMap<string, F32>): boolean {
  return params.has(TIED_Q);
}

/** The factors, or null for a model with a W_U of its own. */
export function tiedUnembed(params: ReadonlyMap<string, F32>): TiedUnembed | null {
  const Q = params.get(TIED_Q);
  if (!Q) return null;
  const W_E = params.get('embed.W_E');
  const P = params.get(TIED_P);
  if (!W_E || !P) throw new Error(`a tied unembedding needs embed.W_E and ${TIED_P} beside ${TIED_Q}`);
  const [V, d] = W_E.dims as [number, number];
  const K = Q.dims[0]!;
  if (P.dims[0] !== d || P.dims[1] !== K || Q.dims[1] !== V) {
    throw new Error(`tied unembedding factors do not fit: W_E [${W_E.dims.join(', ')}], P [${P.dims.join(', ')}], Q [${Q.dims.join(', ')}]`);
  }
  const scale = params.get(TIED_SCALE)?.data ?? null;
  if (scale && scale.length !== d) throw new Error(`${TIED_SCALE} has ${scale.length} values, expected d_model = ${d}`);
  return { W_E, scale, P, Q, d, V, K };
}

/** Which factors a graph of a tied W_U reads (scale, and P / Q when the rank K > 0); undefined when W_U is its own tensor. */
export function tiedFactorsUsed(params: ReadonlyMap<string, F32>): { scale: boolean; rank: boolean } | undefined {
  const t = tiedUnembed(params);
  return t ? { scale: t.scale !== null, rank: t.K > 0 } : undefined;
}

/** The factors of W_U = unscale·W_Eᵀ (a tied checkpoint as loaded): K = 0, a scale only when unscale is not 1. */
export function tiedIdentityFactors(dModel: number, dVocabOut: number, unscale = 1): [string, F32][] {
  return [
    ...(unscale !== 1 ? [[TIED_SCALE, f32([dModel], new Float32Array(dModel).fill(unscale), ['d_model'])] as [string, F32]] : []),
    [TIED_P, f32([dModel, 0], undefined, ['d_model', 'rank'])],
    [TIED_Q, f32([0, dVocabOut], undefined, ['rank', 'd_vocab_out'])],
  ];
}

/** [d_model, d_vocab_out] of W_U, without building it. */
export function unembedDims(params: ReadonlyMap<string, F32>): [number, number] {
  const t = tiedUnembed(params);
  if (t) return [t.d, t.V];
  const W = params.get('unembed.W_U');
  if (!W) throw new Error('model parameter unembed.W_U is missing');
  return [W.dims[0]!, W.dims[1]!];
}

/** W_U[:, v] into out[o + d·stride] for d < d_model (float64 sums, stored as float32). */
function tiedColumn(t: TiedUnembed, v: number, out: Float32Array, o: number, stride: number): void {
  const { d: D, K } = t;
  const E = t.W_E.data;
  const P = t.P.data;
  const Q = t.Q.data;
  for (let d = 0; d < D; d++) {
    let x = (t.scale ? t.scale[d]! : 1) * E[v * D + d]!;
    for (let k = 0; k < K; k++) x += P[d * K + k]! * Q[k * t.V + v]!;
    out[o + d * stride] = x;
  }
}

/** W_U[:, ids] [d_model, ids.length]: exactly TransformerLens's processed W_U columns, tied or not. */
export function unembedColumns(params: ReadonlyMap<string, F32>, ids: readonly number[]): F32 {
  const [D, V] = unembedDims(params);
  for (const v of ids) if (!Number.isInteger(v) || v < 0 || v >= V) throw new Error(`token id ${v} is out of range [0, ${V - 1}] of W_U's columns`);
  const n = ids.length;
  const out = new Float32Array(D * n);
  const t = tiedUnembed(params);
  if (t) {
    ids.forEach((v, j) => tiedColumn(t, v, out, j, n));
  } else {
    const W = params.get('unembed.W_U')!.data;
    for (let d = 0; d < D; d++) for (let j = 0; j < n; j++) out[d * n + j] = W[d * V + ids[j]!]!;
  }
  return f32([D, n], out, ['d_model', 'd_vocab_out']);
}

/**
 * W_U [d_model, d_vocab_out] whole. For a tied model this builds a copy as large as W_E: only for
 * analyses that read every column of a small model (training studies, tests), never on a
 * forward pass or a panel's hot path.
 */
export function unembedMatrix(params: ReadonlyMap<string, F32>): F32 {
  const t = tiedUnembed(params);
  if (!t) {
    const W = params.get('unembed.W_U');
    if (!W) throw new Error('model parameter unembed.W_U is missing');
    return W;
  }
  const out = new Float32Array(t.d * t.V);
  for (let v = 0; v < t.V; v++) tiedColumn(t, v, out, v, t.V);
  return f32([t.d, t.V], out, ['d_model', 'd_vocab_out']);
}

/**
 * X [n, d_model] @ W_U [d_model, d_vocab_out] -> [n, d_vocab_out] (row-major float64) on the CPU,
 * without building W_U (a tied model's product reads W_E row by row). For few rows (a feature's
 * decoder direction, a head's OV output); larger products go through onnxruntime.
 */
export function timesUnembed(params: ReadonlyMap<string, F32>, X: F32): Float64Array {
  const [D, V] = unembedDims(params);
  if (X.dims.length !== 2 || X.dims[1] !== D) throw new Error(`X @ W_U needs X [n, ${D}], got [${X.dims.join(', ')}]`);
  const n = X.dims[0]!;
  const x = X.data;
  const out = new Float64Array(n * V);
  const t = tiedUnembed(params);
  if (t) {
    const E = t.W_E.data;
    const xs = new Float64Array(D);
    const xp = new Float64Array(t.K);
    for (let i = 0; i < n; i++) {
      for (let d = 0; d < D; d++) xs[d] = x[i * D + d]! * (t.scale ? t.scale[d]! : 1);
      xp.fill(0);
      for (let d = 0; d < D; d++) for (let k = 0; k < t.K; k++) xp[k]! += x[i * D + d]! * t.P.data[d * t.K + k]!;
      for (let v = 0; v < V; v++) {
        let s = 0;
        const row = v * D;
        for (let d = 0; d < D; d++) s += xs[d]! * E[row + d]!;
        for (let k = 0; k < t.K; k++) s += xp[k]! * t.Q.data[k * V + v]!;
        out[i * V + v] = s;
      }
    }
  } else {
    const W = params.get('unembed.W_U')!.data;
    const acc = new Float64Array(V);
    for (let i = 0; i < n; i++) {
      acc.fill(0);
      for (let d = 0; d < D; d++) {
        const a = x[i * D + d]!;
        if (a === 0) continue;
        const row = d * V;
        for (let v = 0; v < V; v++) acc[v]! += a * W[row + v]!;
      }
      out.set(acc, i * V);
    }
  }
  return out;
}

/**
 * The same params with W_U a tensor of its own (built from the factors) and the factors gone:
 * for code that trains or rewrites W_U apart from W_E. Untied params come back unchanged.
 */
export function untieUnembed(params: Params): Params {
  if (!isTiedUnembed(params)) return params;
  const out: Params = new Map();
  for (const [k, t] of params) if (!isTiedFactorName(k)) out.set(k, t);
  out.set('unembed.W_U', unembedMatrix(params));
  return out;
}
